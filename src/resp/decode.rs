//! Two-step RESP decoding: `check` walks a candidate frame without allocating and reports
//! `Incomplete` cheaply; only then `parse` splits the frame off the buffer (`split_to` +
//! `freeze`) and hands out bulk values as zero-copy slices of it.
//!
//! Invariant: on `Ok(None)` (incomplete) the buffer is untouched; on `Ok(Some(_))` exactly the
//! bytes of one frame were consumed; on `Err` the caller must reply with the error and close,
//! as Redis does, so the buffer's state after an error does not matter.

use bytes::{Bytes, BytesMut};

use super::{
    Frame, DEFAULT_MAX_BULK_LEN, INLINE_MAX_SIZE, MAX_MULTIBULK_LEN, MAX_NESTING_DEPTH,
    PREALLOC_ARGS_MAX, UNAUTHENTICATED_BULK_MAX, UNAUTHENTICATED_MULTIBULK_MAX,
};

/// A malformed request. The `Display` text is Redis's exact error message (without `ERR `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The `*<n>` line is not a valid length.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$<n>` line is not a valid length or exceeds `proto-max-bulk-len`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A request array element is not a bulk string.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    /// An inline command has an unterminated quote.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// The `*<n>` line is longer than the inline limit.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$<n>` line is longer than the inline limit.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline command is longer than the inline limit.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// A client that has not authenticated sent a request array longer than
    /// [`UNAUTHENTICATED_MULTIBULK_MAX`](super::UNAUTHENTICATED_MULTIBULK_MAX).
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A client that has not authenticated sent a bulk string longer than
    /// [`UNAUTHENTICATED_BULK_MAX`](super::UNAUTHENTICATED_BULK_MAX).
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// A frame (general decoder) starts with an unknown type byte.
    #[error("Protocol error: invalid frame type '{}'", char::from(*.0))]
    InvalidType(u8),
    /// A line that should hold a number or value is malformed (general decoder).
    #[error("Protocol error: invalid line")]
    InvalidLine,
    /// A frame nests deeper than [`MAX_NESTING_DEPTH`](super::MAX_NESTING_DEPTH).
    #[error("Protocol error: nesting too deep")]
    TooDeep,
}

/// Size limits applied while decoding, from the config (`proto-max-bulk-len`, ...).
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Longest bulk string accepted (`proto-max-bulk-len`).
    pub max_bulk_len: u64,
    /// Longest request array accepted.
    pub max_multibulk_len: u64,
    /// The client has not authenticated yet: Redis's much smaller limits apply, so an
    /// unauthenticated peer can't make the server buffer much.
    pub unauthenticated: bool,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_multibulk_len: MAX_MULTIBULK_LEN,
            unauthenticated: false,
        }
    }
}

/// Parses a decimal integer exactly as Redis's `string2ll`: optional `-`, no `+`, no leading
/// zeros, no spaces, must fit in `i64`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    // Accumulate negatively so i64::MIN parses.
    let mut acc: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        acc = acc.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(acc)
    } else {
        acc.checked_neg()
    }
}

/// Finds the `\r` of the next line ending at or after `from`; Redis's request parser (like this
/// one) then assumes the `\n`.
fn find_cr(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    memchr::memchr(b'\r', rest).map(|i| from + i)
}

enum Step {
    Incomplete,
    /// A whole request of `total` bytes with `argc` arguments (0 = nothing to run).
    Request {
        total: usize,
        argc: usize,
    },
}

/// Decodes one client request (a multibulk array of bulk strings, or an inline command) from
/// the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed and `Ok(Some(args))` when a request was
/// consumed; `args` may be empty (`*0`, a blank inline line), which callers skip.
pub fn decode_request(
    buf: &mut BytesMut,
    limits: &DecodeLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    decode_request_resuming(buf, limits, &mut ScanState::default())
}

/// How far a multibulk request at the front of the buffer was found complete by the last
/// call that returned `Ok(None)`: the next call resumes there instead of walking every
/// argument again, so a request of n arguments arriving in pieces costs O(n), not O(n²) (as
/// Redis keeps `multibulklen` and `bulklen` between reads). Valid only while the buffer's
/// front is unchanged, which holds while calls return `Ok(None)`: only a complete request is
/// consumed, and it resets this.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanState {
    /// Arguments found complete.
    args_done: usize,
    /// Where the next argument starts (0: nothing scanned).
    pos: usize,
}

/// [`decode_request`] for a connection that keeps `state` between its calls on one buffer.
pub fn decode_request_resuming(
    buf: &mut BytesMut,
    limits: &DecodeLimits,
    state: &mut ScanState,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(&first) = buf.first() else {
        *state = ScanState::default();
        return Ok(None);
    };
    if first == b'*' {
        match check_multibulk(buf, limits, state)? {
            Step::Incomplete => Ok(None),
            Step::Request { total, argc } => {
                *state = ScanState::default();
                Ok(Some(parse_multibulk(buf.split_to(total).freeze(), argc)))
            }
        }
    } else {
        *state = ScanState::default();
        decode_inline(buf)
    }
}

fn check_multibulk(
    b: &[u8],
    limits: &DecodeLimits,
    state: &mut ScanState,
) -> Result<Step, ProtocolError> {
    let Some(cr) = find_cr(b, 0) else {
        return if b.len() > INLINE_MAX_SIZE {
            Err(ProtocolError::TooBigMultibulkCount)
        } else {
            Ok(Step::Incomplete)
        };
    };
    if cr + 2 > b.len() {
        return Ok(Step::Incomplete);
    }
    let count = b
        .get(1..cr)
        .and_then(parse_i64)
        .ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > 0 && count as u64 > limits.max_multibulk_len {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    if limits.unauthenticated && count > UNAUTHENTICATED_MULTIBULK_MAX {
        return Err(ProtocolError::UnauthenticatedMultibulkLength);
    }
    let mut pos = cr + 2;
    if count <= 0 {
        return Ok(Step::Request {
            total: pos,
            argc: 0,
        });
    }
    let argc = count as usize;
    let mut done = 0;
    if state.pos > pos && state.pos <= b.len() && state.args_done <= argc {
        (done, pos) = (state.args_done, state.pos);
    }
    let mut incomplete = |done: usize, pos: usize| {
        *state = ScanState {
            args_done: done,
            pos,
        };
        Ok(Step::Incomplete)
    };
    for done in done..argc {
        let Some(&tag) = b.get(pos) else {
            return incomplete(done, pos);
        };
        if tag != b'$' {
            return Err(ProtocolError::ExpectedDollar(tag));
        }
        let Some(cr) = find_cr(b, pos) else {
            return if b.len() - pos > INLINE_MAX_SIZE {
                Err(ProtocolError::TooBigBulkCount)
            } else {
                incomplete(done, pos)
            };
        };
        if cr + 2 > b.len() {
            return incomplete(done, pos);
        }
        let len = b
            .get(pos + 1..cr)
            .and_then(parse_i64)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        if len < 0 || len as u64 > limits.max_bulk_len {
            return Err(ProtocolError::InvalidBulkLength);
        }
        if limits.unauthenticated && len > UNAUTHENTICATED_BULK_MAX {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let next = cr + 2 + len as usize + 2;
        if next > b.len() {
            return incomplete(done, pos);
        }
        pos = next;
    }
    Ok(Step::Request { total: pos, argc })
}

/// Re-walks a request that `check_multibulk` accepted; every index was validated there, so the
/// fallbacks below are unreachable in practice and only keep this free of panics.
fn parse_multibulk(frame: Bytes, argc: usize) -> Vec<Bytes> {
    let mut args = Vec::with_capacity(argc.min(PREALLOC_ARGS_MAX));
    let Some(mut pos) = find_cr(&frame, 0).map(|cr| cr + 2) else {
        return args;
    };
    for _ in 0..argc {
        let Some(cr) = find_cr(&frame, pos) else {
            break;
        };
        let len = frame
            .get(pos + 1..cr)
            .and_then(parse_i64)
            .unwrap_or(0)
            .max(0) as usize;
        let start = cr + 2;
        let end = (start + len).min(frame.len());
        args.push(frame.slice(start..end));
        pos = end + 2;
    }
    args
}

fn decode_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > INLINE_MAX_SIZE {
            Err(ProtocolError::TooBigInline)
        } else {
            Ok(None)
        };
    };
    let line = buf.split_to(nl + 1);
    let body = line.get(..nl).unwrap_or_default();
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    split_args(body)
        .map(Some)
        .ok_or(ProtocolError::UnbalancedQuotes)
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line like Redis's `sdssplitargs`: spaces separate arguments,
/// `"..."` understands `\n \r \t \b \a \\ \" \xHH`, `'...'` understands `\'`, and a closing
/// quote must be followed by a space or the end. `None` = unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    let at = |i: usize| line.get(i).copied();
    loop {
        while at(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        let Some(_) = at(i) else {
            return Some(args);
        };
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = at(i);
            if in_double {
                match c {
                    None => return None,
                    Some(b'\\') if at(i + 1) == Some(b'x') => {
                        match (at(i + 2).and_then(hex_val), at(i + 3).and_then(hex_val)) {
                            (Some(h), Some(l)) => {
                                current.push(h * 16 + l);
                                i += 3;
                            }
                            _ => current.push(b'\\'),
                        }
                    }
                    Some(b'\\') if at(i + 1).is_some() => {
                        i += 1;
                        current.push(match at(i) {
                            Some(b'n') => b'\n',
                            Some(b'r') => b'\r',
                            Some(b't') => b'\t',
                            Some(b'b') => 8,
                            Some(b'a') => 7,
                            Some(other) => other,
                            None => return None,
                        });
                    }
                    Some(b'"') => {
                        if at(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else if in_single {
                match c {
                    None => return None,
                    Some(b'\\') if at(i + 1) == Some(b'\'') => {
                        i += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        if at(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => current.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t' | 0) => {
                        i += 1;
                        break;
                    }
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(other) => current.push(other),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(current));
    }
}

enum Checked {
    Incomplete,
    Bad(ProtocolError),
}

impl From<ProtocolError> for Checked {
    fn from(e: ProtocolError) -> Self {
        Checked::Bad(e)
    }
}

/// Decodes one general RESP2/RESP3 frame (any type, nested) from the front of `buf`: the
/// client side of the protocol, and the fuzzing entry point. `Ok(None)` = need more bytes.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
    let mut end = 0;
    match check_frame(buf, &mut end, 0) {
        Ok(()) => {}
        Err(Checked::Incomplete) => return Ok(None),
        Err(Checked::Bad(e)) => return Err(e),
    }
    let data = buf.split_to(end).freeze();
    let mut pos = 0;
    parse_frame(&data, &mut pos).map(Some)
}

/// Returns the content of the CRLF-terminated line at `*pos` (excluding the type byte), moving
/// `*pos` past the CRLF.
fn line_at(b: &[u8], pos: &mut usize) -> Result<(usize, usize), Checked> {
    let start = *pos + 1;
    let cr = find_cr(b, start).ok_or(Checked::Incomplete)?;
    match b.get(cr + 1) {
        None => return Err(Checked::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(ProtocolError::InvalidLine.into()),
    }
    *pos = cr + 2;
    Ok((start, cr))
}

fn line_int(b: &[u8], range: (usize, usize)) -> Result<i64, ProtocolError> {
    b.get(range.0..range.1)
        .and_then(parse_i64)
        .ok_or(ProtocolError::InvalidLine)
}

fn check_frame(b: &[u8], pos: &mut usize, depth: usize) -> Result<(), Checked> {
    if depth > MAX_NESTING_DEPTH {
        return Err(ProtocolError::TooDeep.into());
    }
    let tag = *b.get(*pos).ok_or(Checked::Incomplete)?;
    match tag {
        b'+' | b'-' | b'_' | b'#' | b',' | b'(' => {
            let range = line_at(b, pos)?;
            let content = b.get(range.0..range.1).unwrap_or_default();
            let ok = match tag {
                b'_' => content.is_empty(),
                b'#' => content == b"t" || content == b"f",
                b',' => parse_double(content).is_some(),
                b'(' => is_big_number(content),
                _ => true,
            };
            if !ok {
                return Err(ProtocolError::InvalidLine.into());
            }
            Ok(())
        }
        b':' => {
            let range = line_at(b, pos)?;
            line_int(b, range)?;
            Ok(())
        }
        b'$' | b'!' | b'=' => {
            let range = line_at(b, pos)?;
            let len = line_int(b, range)?;
            if tag == b'$' && len == -1 {
                return Ok(());
            }
            if len < 0 || len as u64 > DEFAULT_MAX_BULK_LEN || (tag == b'=' && len < 4) {
                return Err(ProtocolError::InvalidBulkLength.into());
            }
            let end = *pos + len as usize;
            match (b.get(end), b.get(end + 1)) {
                (Some(b'\r'), Some(b'\n')) => {}
                (Some(b'\r') | None, None) => return Err(Checked::Incomplete),
                _ => return Err(ProtocolError::InvalidLine.into()),
            }
            if tag == b'=' && b.get(*pos + 3) != Some(&b':') {
                return Err(ProtocolError::InvalidLine.into());
            }
            *pos = end + 2;
            Ok(())
        }
        b'*' | b'~' | b'>' | b'%' => {
            let range = line_at(b, pos)?;
            let len = line_int(b, range)?;
            if tag == b'*' && len == -1 {
                return Ok(());
            }
            if len < 0 || len as u64 > MAX_MULTIBULK_LEN {
                return Err(ProtocolError::InvalidMultibulkLength.into());
            }
            let items = if tag == b'%' {
                len as u64 * 2
            } else {
                len as u64
            };
            for _ in 0..items {
                check_frame(b, pos, depth + 1)?;
            }
            Ok(())
        }
        other => Err(ProtocolError::InvalidType(other).into()),
    }
}

fn is_big_number(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

fn parse_double(s: &[u8]) -> Option<f64> {
    match s {
        b"inf" | b"+inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" => Some(f64::NAN),
        _ => std::str::from_utf8(s).ok()?.parse().ok(),
    }
}

/// Builds the frame `check_frame` accepted; errors here are unreachable for checked input.
fn parse_frame(data: &Bytes, pos: &mut usize) -> Result<Frame, ProtocolError> {
    let bad = |_| ProtocolError::InvalidLine;
    let tag = *data.get(*pos).ok_or(ProtocolError::InvalidLine)?;
    let (start, end) = line_at(data, pos).map_err(bad)?;
    let content = data.slice(start..end);
    Ok(match tag {
        b'+' => Frame::Simple(content),
        b'-' => Frame::Error(content),
        b'_' => Frame::Null,
        b'#' => Frame::Boolean(content.as_ref() == b"t"),
        b',' => Frame::Double(parse_double(&content).ok_or(ProtocolError::InvalidLine)?),
        b'(' => Frame::BigNumber(content),
        b':' => Frame::Integer(parse_i64(&content).ok_or(ProtocolError::InvalidLine)?),
        b'$' | b'!' | b'=' => {
            let len = parse_i64(&content).ok_or(ProtocolError::InvalidLine)?;
            if len < 0 {
                return Ok(Frame::Null);
            }
            let body = data.slice(*pos..*pos + len as usize);
            *pos += len as usize + 2;
            match tag {
                b'$' => Frame::Bulk(body),
                b'!' => Frame::Error(body),
                _ => {
                    let mut format = [0u8; 3];
                    format.copy_from_slice(body.get(..3).ok_or(ProtocolError::InvalidLine)?);
                    Frame::Verbatim {
                        format,
                        text: body.slice(4..),
                    }
                }
            }
        }
        _ => {
            let len = parse_i64(&content).ok_or(ProtocolError::InvalidLine)?;
            if len < 0 {
                return Ok(Frame::NullArray);
            }
            let len = len as usize;
            if tag == b'%' {
                let mut pairs = Vec::with_capacity(len.min(PREALLOC_ARGS_MAX));
                for _ in 0..len {
                    let k = parse_frame(data, pos)?;
                    let v = parse_frame(data, pos)?;
                    pairs.push((k, v));
                }
                Frame::Map(pairs)
            } else {
                let mut items = Vec::with_capacity(len.min(PREALLOC_ARGS_MAX));
                for _ in 0..len {
                    items.push(parse_frame(data, pos)?);
                }
                match tag {
                    b'~' => Frame::Set(items),
                    b'>' => Frame::Push(items),
                    _ => Frame::Array(items),
                }
            }
        }
    })
}
