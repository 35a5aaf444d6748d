//! Frame → bytes, for RESP2 or RESP3.
//!
//! Invariant: RESP3-only types are downgraded here and only here (map → flat array, double →
//! bulk, boolean → integer, null → `$-1`/`*-1`), exactly as Redis does for a RESP2 client.

use bytes::{BufMut, BytesMut};

use super::Frame;

/// The protocol version a client negotiated with `HELLO` (RESP2 until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

fn put_line(out: &mut BytesMut, tag: u8, n: impl itoa::Integer) {
    let mut b = itoa::Buffer::new();
    out.put_u8(tag);
    out.put_slice(b.format(n).as_bytes());
    out.put_slice(b"\r\n");
}

fn put_bulk(out: &mut BytesMut, tag: u8, data: &[u8]) {
    put_line(out, tag, data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// Formats a double the way Redis 7.2 replies with it (shortest round-trip text, `inf`, `-inf`,
/// `nan`).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".to_owned()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{d}")
    }
}

impl Frame {
    /// At least the bytes [`Frame::encode`] writes for this frame, give or take its framing
    /// (counted as 32 bytes per element): cheap to compute, as a reply's values are shared,
    /// not copied, until encoded. Lets a connection refuse a reply over its output limit
    /// before building it (`MGET` of one 512 MB key named 200 times is 100 GB of output).
    pub fn encoded_len_estimate(&self) -> u64 {
        const FRAMING: u64 = 32;
        let items = |items: &[Frame]| -> u64 {
            items
                .iter()
                .map(Frame::encoded_len_estimate)
                .fold(FRAMING, u64::saturating_add)
        };
        match self {
            Frame::Simple(b) | Frame::Error(b) | Frame::Bulk(b) | Frame::BigNumber(b) => {
                (b.len() as u64).saturating_add(FRAMING)
            }
            Frame::Verbatim { text, .. } => (text.len() as u64).saturating_add(FRAMING),
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => items(v),
            Frame::Map(pairs) => pairs.iter().fold(FRAMING, |sum, (k, v)| {
                sum.saturating_add(k.encoded_len_estimate())
                    .saturating_add(v.encoded_len_estimate())
            }),
            Frame::Double(d) => (format_double(*d).len() as u64).saturating_add(FRAMING),
            Frame::Integer(_) | Frame::Null | Frame::NullArray | Frame::Boolean(_) => FRAMING,
        }
    }

    /// Appends this frame's wire form for `proto` to `out`.
    pub fn encode(&self, out: &mut BytesMut, proto: Protocol) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Frame::Simple(s) => {
                out.put_u8(b'+');
                out.put_slice(s);
                out.put_slice(b"\r\n");
            }
            Frame::Error(s) => {
                out.put_u8(b'-');
                // An error may quote the client's own bytes (an unknown command's name and
                // arguments): a CR or LF there would end the line early and desynchronise the
                // reply stream, so, as Redis's `addReplyErrorLength` does, they become spaces.
                out.extend(s.iter().map(|&b| match b {
                    b'\r' | b'\n' => b' ',
                    b => b,
                }));
                out.put_slice(b"\r\n");
            }
            Frame::Integer(n) => put_line(out, b':', *n),
            Frame::Bulk(b) => put_bulk(out, b'$', b),
            Frame::Null if resp3 => out.put_slice(b"_\r\n"),
            Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Frame::Null => out.put_slice(b"$-1\r\n"),
            Frame::NullArray => out.put_slice(b"*-1\r\n"),
            Frame::Array(items) => encode_items(out, b'*', items, proto),
            Frame::Set(items) => encode_items(out, if resp3 { b'~' } else { b'*' }, items, proto),
            Frame::Push(items) => encode_items(out, if resp3 { b'>' } else { b'*' }, items, proto),
            Frame::Map(pairs) => {
                if resp3 {
                    put_line(out, b'%', pairs.len());
                } else {
                    put_line(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(out, proto);
                    v.encode(out, proto);
                }
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    out.put_u8(b',');
                    out.put_slice(text.as_bytes());
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, b'$', text.as_bytes());
                }
            }
            Frame::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Boolean(b) => put_line(out, b':', i64::from(*b)),
            Frame::Verbatim { format, text } => {
                if resp3 {
                    put_line(out, b'=', text.len() + 4);
                    out.put_slice(format);
                    out.put_u8(b':');
                    out.put_slice(text);
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, b'$', text);
                }
            }
            Frame::BigNumber(n) if resp3 => {
                out.put_u8(b'(');
                out.put_slice(n);
                out.put_slice(b"\r\n");
            }
            Frame::BigNumber(n) => put_bulk(out, b'$', n),
        }
    }
}

fn encode_items(out: &mut BytesMut, tag: u8, items: &[Frame], proto: Protocol) {
    put_line(out, tag, items.len());
    for item in items {
        item.encode(out, proto);
    }
}
