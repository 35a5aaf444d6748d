//! RESP2/RESP3 wire format: [`Frame`], a two-step decoder and an encoder.
//!
//! Invariant: the decoder never consumes bytes from the connection buffer unless a whole frame
//! is present (`check` first, then `parse`), so `Incomplete` leaves the buffer untouched and a
//! later read simply retries.

mod decode;
mod encode;
mod frame;
#[cfg(test)]
mod tests;

pub use decode::{
    decode, decode_request, decode_request_resuming, parse_i64, split_args, DecodeLimits,
    ProtocolError, ScanState,
};
pub use encode::{format_double, Protocol};
pub use frame::Frame;

/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline command or length line accepted (64 KiB).
pub const INLINE_MAX_SIZE: usize = 64 * 1024;
/// Redis's default `proto-max-bulk-len`: 512 MiB.
pub const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
/// The largest multibulk (array) length a request may declare; Redis 7 accepts up to `INT_MAX`.
pub const MAX_MULTIBULK_LEN: u64 = i32::MAX as u64;
/// How many array slots the decoder reserves up front at most, so a declared but unsent length
/// can't make us allocate.
pub const PREALLOC_ARGS_MAX: usize = 1024;
/// Longest request array a client may send before it authenticates (Redis: 10).
pub const UNAUTHENTICATED_MULTIBULK_MAX: i64 = 10;
/// Longest bulk string a client may send before it authenticates (Redis: 16 KiB).
pub const UNAUTHENTICATED_BULK_MAX: i64 = 16 * 1024;
/// Nesting limit for the general decoder (requests are flat); guards the stack against fuzzed input.
pub const MAX_NESTING_DEPTH: usize = 128;

const _: () = assert!(PREALLOC_ARGS_MAX as u64 <= MAX_MULTIBULK_LEN);
