//! [`InlineKey`]: a user key stored inline in its index node when short (<= 22 bytes), so the
//! common small key costs no separate allocation.
//!
//! Invariant: the bytes returned by [`InlineKey::as_bytes`] never change for the key's life.

/// Keys up to this length are stored inline.
pub(crate) const INLINE_KEY_MAX_BYTES: usize = 22;

/// A user key, inline when short.
#[derive(Clone)]
pub(crate) enum InlineKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_MAX_BYTES],
    },
    Heap(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<InlineKey>() == 24);

impl InlineKey {
    pub(crate) fn new(key: &[u8]) -> InlineKey {
        if key.len() <= INLINE_KEY_MAX_BYTES {
            let mut bytes = [0u8; INLINE_KEY_MAX_BYTES];
            if let Some(prefix) = bytes.get_mut(..key.len()) {
                prefix.copy_from_slice(key);
            }
            InlineKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            InlineKey::Heap(Box::from(key))
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            InlineKey::Inline { len, bytes } => bytes.get(..*len as usize).unwrap_or(&[]),
            InlineKey::Heap(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for InlineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", bytes::Bytes::copy_from_slice(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_keys_round_trip() {
        for len in [0, 1, 16, 22, 23, 100] {
            let key: Vec<u8> = (0..len as u8).collect();
            let inline = InlineKey::new(&key);
            assert_eq!(inline.as_bytes(), &key[..]);
            assert_eq!(
                matches!(inline, InlineKey::Inline { .. }),
                len <= INLINE_KEY_MAX_BYTES
            );
        }
    }
}
