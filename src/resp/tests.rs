//! Codec tests: known frames, round trips, input split at every byte, garbage never panics.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn req(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    decode_request(&mut buf, &DecodeLimits::default())
}

fn args(v: &[&str]) -> Vec<Bytes> {
    v.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

#[test]
fn multibulk_request_decodes_and_consumes_exactly_one_frame() {
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n"[..]);
    let limits = DecodeLimits::default();
    assert_eq!(
        decode_request(&mut buf, &limits).unwrap(),
        Some(args(&["GET", "k"]))
    );
    assert_eq!(
        decode_request(&mut buf, &limits).unwrap(),
        Some(args(&["PING"]))
    );
    assert_eq!(decode_request(&mut buf, &limits).unwrap(), None);
    assert!(buf.is_empty());
}

#[test]
fn every_prefix_of_a_request_is_incomplete_and_untouched() {
    let full = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    for cut in 0..full.len() {
        let mut buf = BytesMut::from(&full[..cut]);
        assert_eq!(
            decode_request(&mut buf, &DecodeLimits::default()).unwrap(),
            None,
            "cut {cut}"
        );
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn protocol_errors_use_redis_texts() {
    let cases: &[(&[u8], &str)] = &[
        (b"*abc\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$-5\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n+foo\r\n", "Protocol error: expected '$', got '+'"),
        (
            b"SET \"a b\r\n",
            "Protocol error: unbalanced quotes in request",
        ),
        (
            b"*3000000000\r\n",
            "Protocol error: invalid multibulk length",
        ),
    ];
    for (input, text) in cases {
        assert_eq!(req(input).unwrap_err().to_string(), *text);
    }
}

#[test]
fn bulk_length_limit_is_enforced_before_the_body_arrives() {
    let limits = DecodeLimits {
        max_bulk_len: 10,
        ..DecodeLimits::default()
    };
    let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
    assert_eq!(
        decode_request(&mut buf, &limits),
        Err(ProtocolError::InvalidBulkLength)
    );
    let mut ok = BytesMut::from(&b"*1\r\n$10\r\n0123456789\r\n"[..]);
    assert_eq!(
        decode_request(&mut ok, &limits).unwrap(),
        Some(args(&["0123456789"]))
    );
}

#[test]
fn unauthenticated_clients_get_small_limits() {
    let limits = DecodeLimits {
        unauthenticated: true,
        ..DecodeLimits::default()
    };
    let mut many = BytesMut::from(&b"*11\r\n"[..]);
    assert_eq!(
        decode_request(&mut many, &limits),
        Err(ProtocolError::UnauthenticatedMultibulkLength)
    );
    let mut big = BytesMut::from(&b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"[..]);
    assert_eq!(
        decode_request(&mut big, &limits).unwrap_err().to_string(),
        "Protocol error: unauthenticated bulk length"
    );
    let mut ok = BytesMut::from(&b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"[..]);
    assert_eq!(
        decode_request(&mut ok, &limits).unwrap(),
        Some(args(&["AUTH", "pw"]))
    );
}

#[test]
fn oversized_length_lines_and_inline_requests_are_rejected() {
    let long = vec![b'a'; INLINE_MAX_SIZE + 1];
    assert_eq!(req(&long), Err(ProtocolError::TooBigInline));
    let mut mb = b"*1".to_vec();
    mb.extend(std::iter::repeat_n(b'1', INLINE_MAX_SIZE + 1));
    assert_eq!(req(&mb), Err(ProtocolError::TooBigMultibulkCount));
}

#[test]
fn inline_commands_split_like_sdssplitargs() {
    assert_eq!(req(b"set k v\r\n").unwrap(), Some(args(&["set", "k", "v"])));
    assert_eq!(req(b"  PING  \n").unwrap(), Some(args(&["PING"])));
    assert_eq!(req(b"\r\n").unwrap(), Some(vec![]));
    assert_eq!(
        req(b"set \"a b\\n\\x41\" 'it\\'s'\r\n").unwrap(),
        Some(args(&["set", "a b\nA", "it's"]))
    );
    assert_eq!(
        req(b"set \"a\"b c\r\n"),
        Err(ProtocolError::UnbalancedQuotes)
    );
    assert_eq!(req(b"echo \"\"\r\n").unwrap(), Some(args(&["echo", ""])));
}

#[test]
fn empty_multibulk_is_skipped() {
    assert_eq!(req(b"*0\r\n").unwrap(), Some(vec![]));
    assert_eq!(req(b"*-1\r\n").unwrap(), Some(vec![]));
}

#[test]
fn parse_i64_matches_string2ll() {
    assert_eq!(parse_i64(b"0"), Some(0));
    assert_eq!(parse_i64(b"-12"), Some(-12));
    assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"-0",
        b"01",
        b"+1",
        b" 1",
        b"1 ",
        b"9223372036854775808",
        b"1.0",
    ] {
        assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn resp2_downgrades_resp3_types() {
    let f = Frame::Map(vec![
        (Frame::bulk_static("a"), Frame::Boolean(true)),
        (Frame::bulk_static("b"), Frame::Null),
    ]);
    let mut out = BytesMut::new();
    f.encode(&mut out, Protocol::Resp2);
    assert_eq!(&out[..], b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n");
    out.clear();
    f.encode(&mut out, Protocol::Resp3);
    assert_eq!(&out[..], b"%2\r\n$1\r\na\r\n#t\r\n$1\r\nb\r\n_\r\n");
    out.clear();
    Frame::NullArray.encode(&mut out, Protocol::Resp2);
    Frame::Double(1.5).encode(&mut out, Protocol::Resp2);
    Frame::Double(1.5).encode(&mut out, Protocol::Resp3);
    assert_eq!(&out[..], b"*-1\r\n$3\r\n1.5\r\n,1.5\r\n");
}

fn leaf() -> impl Strategy<Value = Frame> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,12}".prop_map(|s| Frame::Simple(Bytes::from(s))),
        "ERR [a-z ]{0,12}".prop_map(|s| Frame::Error(Bytes::from(s))),
        any::<i64>().prop_map(Frame::Integer),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|v| Frame::Bulk(Bytes::from(v))),
        Just(Frame::Null),
        (-1e12f64..1e12).prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        "-?[1-9][0-9]{0,30}".prop_map(|s| Frame::BigNumber(Bytes::from(s))),
        "[a-z\r\n]{0,20}".prop_map(|s| Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from(s)
        }),
    ]
}

fn frame3() -> impl Strategy<Value = Frame> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn resp3_round_trips_split_anywhere(frame in frame3(), cut in 0usize..64) {
        let mut wire = BytesMut::new();
        frame.encode(&mut wire, Protocol::Resp3);
        let cut = cut.min(wire.len().saturating_sub(1));
        let mut partial = BytesMut::from(&wire[..cut]);
        prop_assert_eq!(decode(&mut partial).unwrap(), None);
        let mut buf = wire.clone();
        prop_assert_eq!(decode(&mut buf).unwrap(), Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn requests_round_trip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 1..8)) {
        let frame = Frame::Array(parts.iter().map(|p| Frame::Bulk(Bytes::from(p.clone()))).collect());
        let mut wire = BytesMut::new();
        frame.encode(&mut wire, Protocol::Resp2);
        let expected: Vec<Bytes> = parts.into_iter().map(Bytes::from).collect();
        prop_assert_eq!(req(&wire).unwrap(), Some(expected));
    }

    #[test]
    fn decoders_never_panic_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = req(&data);
        let mut buf = BytesMut::from(&data[..]);
        let _ = decode(&mut buf);
    }
}

/// An error quoting the client's bytes stays one line: CR and LF become spaces, as in Redis
/// (an unknown command named `foo\r\n+OK` must not read as two replies).
#[test]
fn an_error_never_carries_cr_or_lf() {
    let mut out = BytesMut::new();
    Frame::error("ERR unknown command 'foo\r\n+OK', with args beginning with: ")
        .encode(&mut out, Protocol::Resp2);
    assert_eq!(
        &out[..],
        b"-ERR unknown command 'foo  +OK', with args beginning with: \r\n"
    );
}

/// The estimate a connection checks its output limit with never falls short of the bytes
/// actually encoded, in either protocol.
#[test]
fn encoded_len_estimate_covers_the_encoding() {
    let frames = [
        Frame::Bulk(Bytes::from(vec![b'x'; 1000])),
        Frame::Array(vec![
            Frame::Integer(i64::MIN),
            Frame::Null,
            Frame::Simple(Bytes::from_static(b"OK")),
            Frame::Map(vec![(Frame::Double(1.5e300), Frame::Boolean(true))]),
            Frame::Set(vec![Frame::Bulk(Bytes::from_static(b"member"))]),
        ]),
        Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(b"some text"),
        },
    ];
    for frame in &frames {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let mut out = BytesMut::new();
            frame.encode(&mut out, proto);
            assert!(
                frame.encoded_len_estimate() >= out.len() as u64,
                "{frame:?}"
            );
        }
    }
}

proptest! {
    /// Requests fed in arbitrary pieces to one resuming decoder (as a connection does) decode
    /// exactly as the whole stream does with fresh calls, and every call before a request is
    /// complete returns nothing and consumes nothing.
    #[test]
    fn a_resuming_decoder_matches_a_fresh_one_whatever_the_pieces(
        requests in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..20),
            1..6,
        ),
        cuts in proptest::collection::vec(1usize..9, 1..400),
    ) {
        let mut stream = Vec::new();
        for args in &requests {
            stream.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                stream.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                stream.extend_from_slice(a);
                stream.extend_from_slice(b"\r\n");
            }
        }
        let limits = DecodeLimits::default();
        let mut buf = BytesMut::new();
        let mut state = ScanState::default();
        let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut fed = 0;
        let mut cut = cuts.iter().cycle();
        while fed < stream.len() {
            let n = (*cut.next().unwrap()).min(stream.len() - fed);
            buf.extend_from_slice(&stream[fed..fed + n]);
            fed += n;
            loop {
                let before = buf.len();
                match decode_request_resuming(&mut buf, &limits, &mut state).unwrap() {
                    Some(args) => got.push(args.iter().map(|a| a.to_vec()).collect()),
                    None => {
                        prop_assert_eq!(buf.len(), before);
                        break;
                    }
                }
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, requests);
    }
}
