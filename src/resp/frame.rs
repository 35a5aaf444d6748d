//! The RESP value type shared by RESP2 and RESP3.
//!
//! Invariant: a `Frame` is protocol-neutral; the RESP2 downgrade of RESP3-only types happens only
//! in the encoder, so command code builds one reply for both protocols.

use bytes::Bytes;

/// One RESP value.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+OK`: a status line (must not contain CR or LF).
    Simple(Bytes),
    /// `-ERR ...`: an error line, code included, without the leading `-`.
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`: a binary-safe string.
    Bulk(Bytes),
    /// The null reply: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// The null array: `*-1` in RESP2 (EXEC after a failed WATCH), `_` in RESP3.
    NullArray,
    /// `*n`: an array.
    Array(Vec<Frame>),
    /// `%n` (RESP3): key/value pairs; a flat array in RESP2.
    Map(Vec<(Frame, Frame)>),
    /// `~n` (RESP3): a set; an array in RESP2.
    Set(Vec<Frame>),
    /// `,1.5` (RESP3): a double; a bulk string in RESP2.
    Double(f64),
    /// `#t` (RESP3): a boolean; `:1`/`:0` in RESP2.
    Boolean(bool),
    /// `=` (RESP3): verbatim text with a 3-byte format (`txt`, `mkd`); a bulk string in RESP2.
    Verbatim {
        /// The format tag, e.g. `txt`.
        format: [u8; 3],
        /// The text itself.
        text: Bytes,
    },
    /// `(` (RESP3): a big number as decimal text; a bulk string in RESP2.
    BigNumber(Bytes),
    /// `>` (RESP3): an out-of-band push; an array in RESP2.
    Push(Vec<Frame>),
}

impl Frame {
    /// The `+OK` status reply.
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// A status reply from static text.
    pub fn simple(text: &'static str) -> Frame {
        Frame::Simple(Bytes::from_static(text.as_bytes()))
    }

    /// A container command's HELP reply: one status line per entry, as Redis sends it.
    pub fn help(lines: &[&'static str]) -> Frame {
        Frame::Array(lines.iter().map(|l| Frame::simple(l)).collect())
    }

    /// A bulk string copied from `data`.
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }

    /// A bulk string from static text.
    pub fn bulk_static(text: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(text.as_bytes()))
    }

    /// An error reply; `text` includes the code (`ERR ...`, `WRONGTYPE ...`).
    pub fn error(text: impl Into<String>) -> Frame {
        Frame::Error(Bytes::from(text.into()))
    }

    /// `Bulk(v)` or `Null`.
    pub fn bulk_or_null(value: Option<Bytes>) -> Frame {
        match value {
            Some(v) => Frame::Bulk(v),
            None => Frame::Null,
        }
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }
}
