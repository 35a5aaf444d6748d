//! Feeds arbitrary bytes to both RESP decoders (the general frame decoder and the request
//! decoder with Redis's limits). They must never panic, never consume more than they were
//! given, and a decoded request must re-encode to bytes that decode to the same arguments.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tierkv::resp::{decode, decode_request, DecodeLimits, Frame, Protocol};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_frame)) = decode(&mut buf) {
        if buf.is_empty() {
            break;
        }
    }
    assert!(buf.len() <= data.len());

    let limits = DecodeLimits::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(args)) = decode_request(&mut buf, &limits) {
        if args.is_empty() {
            continue;
        }
        let frame = Frame::Array(args.iter().cloned().map(Frame::Bulk).collect());
        let mut out = BytesMut::new();
        frame.encode(&mut out, Protocol::Resp2);
        let again: Option<Vec<Bytes>> = decode_request(&mut out, &limits).ok().flatten();
        assert_eq!(again.as_ref(), Some(&args), "request did not survive a round trip");
        if buf.is_empty() {
            break;
        }
    }
});
