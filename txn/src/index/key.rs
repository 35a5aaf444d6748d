//! [`KeyBytes`]: a user key stored in 22 bytes of its index node when short (<= 22 bytes), so
//! the common small key costs no separate allocation; a longer key is a heap allocation the
//! node owns, its pointer and length kept in the same 22 bytes.
//!
//! The key's *tag* (its length when inline, [`HEAP_TAG`] when on the heap) is not stored here
//! but in the top byte of the node's `meta` word (see `version.rs`): that is what lets a 24-bit
//! access word (LRU clock / LFU counter) share the node's 56 bytes with a 22-byte inline key.
//!
//! Invariants: the tag and the key bytes never change for the key's life; a heap key's
//! allocation is freed exactly once, by [`KeyBytes::free`] from the node's `Drop`. The area is
//! `MaybeUninit<u8>` (all 22 bytes initialised) so that moving the node keeps the heap
//! pointer's provenance.

use std::mem::MaybeUninit;

/// Keys up to this length are stored inline.
pub(crate) const INLINE_KEY_MAX_BYTES: usize = 22;
/// The tag of a key stored on the heap.
pub(crate) const HEAP_TAG: u8 = u8::MAX;

const POINTER_BYTES: usize = std::mem::size_of::<*mut u8>();
const _: () = assert!(INLINE_KEY_MAX_BYTES < HEAP_TAG as usize);
const _: () = assert!(POINTER_BYTES + std::mem::size_of::<usize>() <= INLINE_KEY_MAX_BYTES);

/// A user key's bytes, inline when short. Meaningless without its tag.
#[repr(transparent)]
pub(crate) struct KeyBytes([MaybeUninit<u8>; INLINE_KEY_MAX_BYTES]);

const _: () = assert!(std::mem::size_of::<KeyBytes>() == INLINE_KEY_MAX_BYTES);

impl KeyBytes {
    /// Stores `key`; returns the bytes and the tag the caller keeps beside them.
    pub(crate) fn new(key: &[u8]) -> (KeyBytes, u8) {
        let mut area = [MaybeUninit::new(0u8); INLINE_KEY_MAX_BYTES];
        if key.len() <= INLINE_KEY_MAX_BYTES {
            for (slot, byte) in area.iter_mut().zip(key) {
                *slot = MaybeUninit::new(*byte);
            }
            return (KeyBytes(area), key.len() as u8);
        }
        let heap: Box<[u8]> = Box::from(key);
        let len = heap.len();
        let pointer = Box::into_raw(heap) as *mut u8;
        let base = area.as_mut_ptr() as *mut u8;
        // SAFETY: the area is INLINE_KEY_MAX_BYTES long, enough for a pointer and a length
        // (asserted above); unaligned writes need no alignment.
        unsafe {
            std::ptr::write_unaligned(base as *mut *mut u8, pointer);
            std::ptr::write_unaligned(base.add(POINTER_BYTES) as *mut usize, len);
        }
        (KeyBytes(area), HEAP_TAG)
    }

    fn heap_parts(&self) -> (*mut u8, usize) {
        let base = self.0.as_ptr() as *const u8;
        // SAFETY: in bounds (see `new`); every byte of the area is initialised.
        unsafe {
            (
                std::ptr::read_unaligned(base as *const *mut u8),
                std::ptr::read_unaligned(base.add(POINTER_BYTES) as *const usize),
            )
        }
    }

    /// The key.
    ///
    /// # Safety
    ///
    /// `tag` is the one [`KeyBytes::new`] returned with these bytes, and `free` has not run.
    pub(crate) unsafe fn as_bytes(&self, tag: u8) -> &[u8] {
        if tag == HEAP_TAG {
            let (pointer, len) = self.heap_parts();
            // SAFETY: `pointer`/`len` came from a live `Box<[u8]>` this area owns (the caller
            // promises it is not freed yet); the bytes never change.
            unsafe { std::slice::from_raw_parts(pointer, len) }
        } else {
            let len = usize::from(tag).min(INLINE_KEY_MAX_BYTES);
            // SAFETY: the first `len` bytes are initialised key bytes inside the area.
            unsafe { std::slice::from_raw_parts(self.0.as_ptr() as *const u8, len) }
        }
    }

    /// Frees a heap key's allocation (nothing for an inline key).
    ///
    /// # Safety
    ///
    /// `tag` as in [`KeyBytes::as_bytes`]; called at most once, and the key is not read after.
    pub(crate) unsafe fn free(&mut self, tag: u8) {
        if tag == HEAP_TAG {
            let (pointer, len) = self.heap_parts();
            // SAFETY: rebuilds the `Box<[u8]>` leaked in `new`, exactly once (caller's promise).
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(pointer, len)) });
        }
    }
}

/// Bytes of heap a key of `len` bytes costs beyond its node (0 when inline).
pub(crate) fn heap_key_len(len: usize) -> usize {
    if len <= INLINE_KEY_MAX_BYTES {
        0
    } else {
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_keys_round_trip() {
        for len in [0, 1, 16, 21, 22, 23, 100, 5000] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let (mut bytes, tag) = KeyBytes::new(&key);
            assert_eq!(tag == HEAP_TAG, len > INLINE_KEY_MAX_BYTES, "len {len}");
            // SAFETY: the tag `new` returned; freed only below.
            assert_eq!(unsafe { bytes.as_bytes(tag) }, &key[..]);
            // Moving the bytes keeps a heap key readable.
            let moved = std::hint::black_box(bytes);
            // SAFETY: as above.
            assert_eq!(unsafe { moved.as_bytes(tag) }, &key[..]);
            bytes = moved;
            // SAFETY: freed once, not read afterwards.
            unsafe { bytes.free(tag) };
        }
    }
}
