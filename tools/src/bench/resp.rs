//! A minimal RESP2 client codec: request encoding into one reusable buffer and a reply parser.
//!
//! Invariant: `parse_reply` never reads past the bytes it is given and never allocates for
//! scalar replies; an incomplete reply is `Ok(None)` (a normal outcome, not an error), so the
//! caller reads more bytes and tries again from the same offset.

use thiserror::Error;

/// Largest bulk string accepted from a server, so a corrupt length cannot make us buffer forever.
pub const BULK_LEN_MAX: usize = 512 * 1024 * 1024;
/// Largest array accepted from a server.
pub const ARRAY_LEN_MAX: usize = 1024 * 1024;

/// A reply the server sent that is not valid RESP2.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first byte of a reply is not a RESP2 type marker.
    #[error("unexpected reply type byte {byte:#04x}")]
    BadType {
        /// The offending byte.
        byte: u8,
    },
    /// An integer or length field is not a decimal integer.
    #[error("malformed integer or length")]
    BadInteger,
    /// A length is negative (other than -1 for null) or above our limits.
    #[error("length {len} out of range")]
    BadLength {
        /// The length the server announced.
        len: i64,
    },
    /// A bulk string is not followed by CRLF.
    #[error("bulk string not terminated by CRLF")]
    MissingCrlf,
}

/// One parsed reply, borrowing from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `+OK`, `+QUEUED`, ...
    Simple(&'a [u8]),
    /// `-ERR ...`: the whole message after the dash.
    Error(&'a [u8]),
    /// `:123`
    Integer(i64),
    /// `$n` bulk string, `None` for the null bulk `$-1`.
    Bulk(Option<&'a [u8]>),
    /// `*n` array, `None` for the null array `*-1` (an aborted EXEC).
    Array(Option<Vec<Reply<'a>>>),
}

impl Reply<'_> {
    /// The error kind (first word of an error reply, e.g. `WRONGTYPE`), if this is an error.
    pub fn error_kind(&self) -> Option<String> {
        match self {
            Reply::Error(msg) => {
                let word = msg.split(|b| *b == b' ').next().unwrap_or(msg);
                Some(String::from_utf8_lossy(word).into_owned())
            }
            _ => None,
        }
    }
}

/// Appends one command, as a RESP array of bulk strings, to `buf`.
pub fn encode_command(buf: &mut Vec<u8>, args: &[&[u8]]) {
    encode_array_header(buf, args.len());
    for arg in args {
        encode_bulk(buf, arg);
    }
}

/// Appends the `*n` header of a command with `count` arguments; follow with `count` bulks.
pub fn encode_array_header(buf: &mut Vec<u8>, count: usize) {
    buf.push(b'*');
    buf.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// Appends one bulk-string argument.
pub fn encode_bulk(buf: &mut Vec<u8>, arg: &[u8]) {
    buf.push(b'$');
    buf.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(arg);
    buf.extend_from_slice(b"\r\n");
}

/// Parses one reply from the start of `buf`: `Ok(Some((reply, bytes_used)))`, or `Ok(None)`
/// when `buf` holds only part of a reply.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ProtocolError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], pos: usize) -> Result<Option<(Reply<'_>, usize)>, ProtocolError> {
    let Some(&marker) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((line, after_line)) = read_line(buf, pos + 1) else {
        return Ok(None);
    };
    match marker {
        b'+' => Ok(Some((Reply::Simple(line), after_line))),
        b'-' => Ok(Some((Reply::Error(line), after_line))),
        b':' => Ok(Some((Reply::Integer(parse_int(line)?), after_line))),
        b'$' => {
            let len = parse_int(line)?;
            if len == -1 {
                return Ok(Some((Reply::Bulk(None), after_line)));
            }
            let len_usize = usize::try_from(len).map_err(|_| ProtocolError::BadLength { len })?;
            if len_usize > BULK_LEN_MAX {
                return Err(ProtocolError::BadLength { len });
            }
            let end = after_line + len_usize;
            let Some(tail) = buf.get(end..end + 2) else {
                return Ok(None);
            };
            if tail != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            let data = buf.get(after_line..end).ok_or(ProtocolError::MissingCrlf)?;
            Ok(Some((Reply::Bulk(Some(data)), end + 2)))
        }
        b'*' => {
            let len = parse_int(line)?;
            if len == -1 {
                return Ok(Some((Reply::Array(None), after_line)));
            }
            let count = usize::try_from(len).map_err(|_| ProtocolError::BadLength { len })?;
            if count > ARRAY_LEN_MAX {
                return Err(ProtocolError::BadLength { len });
            }
            let mut items = Vec::with_capacity(count);
            let mut cursor = after_line;
            for _ in 0..count {
                match parse_at(buf, cursor)? {
                    Some((item, next)) => {
                        items.push(item);
                        cursor = next;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), cursor)))
        }
        byte => Err(ProtocolError::BadType { byte }),
    }
}

/// Returns the line starting at `start` (without CRLF) and the offset after its CRLF.
fn read_line(buf: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(start..)?;
    let cr = memchr::memchr(b'\r', rest)?;
    if rest.get(cr + 1) != Some(&b'\n') {
        // A lone CR inside a simple line is not valid RESP2; wait for more or let the
        // caller fail on the type byte of the next reply.
        return None;
    }
    Some((rest.get(..cr)?, start + cr + 2))
}

fn parse_int(line: &[u8]) -> Result<i64, ProtocolError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::BadInteger)?;
    text.parse::<i64>().map_err(|_| ProtocolError::BadInteger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut buf = Vec::new();
        encode_command(&mut buf, &[b"SET", b"k", b"hello"]);
        encode_command(&mut buf, &[b"GET", b""]);
        assert_eq!(
            buf,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn parses_every_reply_type() {
        let input =
            b"+OK\r\n-WRONGTYPE bad\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\nx\r\n:7\r\n*-1\r\n";
        let mut pos = 0;
        let mut replies = Vec::new();
        while let Some((reply, used)) = parse_reply(&input[pos..]).unwrap() {
            replies.push(reply);
            pos += used;
        }
        assert_eq!(pos, input.len());
        assert_eq!(
            replies,
            vec![
                Reply::Simple(b"OK"),
                Reply::Error(b"WRONGTYPE bad"),
                Reply::Integer(42),
                Reply::Bulk(Some(b"abc")),
                Reply::Bulk(None),
                Reply::Array(Some(vec![Reply::Bulk(Some(b"x")), Reply::Integer(7)])),
                Reply::Array(None),
            ]
        );
        assert_eq!(replies[1].error_kind().as_deref(), Some("WRONGTYPE"));
    }

    #[test]
    fn every_prefix_of_a_reply_is_incomplete() {
        let input = b"*2\r\n$5\r\nhello\r\n$-1\r\n";
        for cut in 0..input.len() {
            assert_eq!(parse_reply(&input[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse_reply(input).unwrap().is_some());
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            parse_reply(b"?x\r\n"),
            Err(ProtocolError::BadType { byte: b'?' })
        );
        assert_eq!(parse_reply(b"$abc\r\n"), Err(ProtocolError::BadInteger));
        assert_eq!(
            parse_reply(b"$-5\r\n"),
            Err(ProtocolError::BadLength { len: -5 })
        );
        assert_eq!(
            parse_reply(b"$1\r\nab\r\n"),
            Err(ProtocolError::MissingCrlf)
        );
    }
}
