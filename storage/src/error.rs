//! The storage crate's one error type.

/// Everything that can go wrong below the transaction layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A [`crate::page::ValueRef`] that does not name a live, in-range value of this store.
    #[error("bad value reference: page {page}, offset {offset}, length {len}")]
    BadValueRef {
        /// The page the reference names.
        page: u32,
        /// Byte offset inside the page (or extent).
        offset: u32,
        /// Length in bytes.
        len: u32,
    },
    /// A value longer than the page store accepts.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The offered length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The page id space (or the configured page budget) is exhausted.
    #[error("out of pages: {pages} pages in use")]
    OutOfPages {
        /// Pages in use when the allocation failed.
        pages: u64,
    },
}
