//! In-process tests of the key commands: parse + execute on an in-memory engine, replies compared
//! byte for byte with what Redis 7 answers.

use crate::cmd::tests::{bulk, err, Harness};
use crate::resp::Frame;

#[test]
fn expire_conditions_follow_redis() {
    let mut h = Harness::new();
    h.run("SET k v");
    assert_eq!(h.run("EXPIRE k 100 XX"), Frame::Integer(0));
    assert_eq!(h.run("EXPIRE k 100 GT"), Frame::Integer(0));
    assert_eq!(h.run("EXPIRE k 100 NX"), Frame::Integer(1));
    assert_eq!(h.run("EXPIRE k 200 NX"), Frame::Integer(0));
    assert_eq!(h.run("EXPIRE k 50 GT"), Frame::Integer(0));
    assert_eq!(h.run("EXPIRE k 200 GT"), Frame::Integer(1));
    assert_eq!(h.run("EXPIRE k 300 LT"), Frame::Integer(0));
    assert_eq!(h.run("PEXPIRE k 5000 LT"), Frame::Integer(1));
    assert!(matches!(h.run("PTTL k"), Frame::Integer(4900..=5000)));
    assert_eq!(
        h.run("EXPIRE k 1 NX XX"),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        h.run("EXPIRE k 1 GT LT"),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(h.run("EXPIRE k 1 FOO"), err("ERR Unsupported option FOO"));
    assert_eq!(
        h.run("EXPIRE k 9223372036854775807"),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(h.run("PERSIST k"), Frame::Integer(1));
    assert_eq!(h.run("PERSIST k"), Frame::Integer(0));
    assert_eq!(h.run("TTL k"), Frame::Integer(-1));
    assert_eq!(h.run("TTL nokey"), Frame::Integer(-2));
    assert_eq!(h.run("EXPIREAT k 4102444800"), Frame::Integer(1));
    assert_eq!(h.run("EXPIRETIME k"), Frame::Integer(4102444800));
    assert_eq!(h.run("PEXPIRETIME k"), Frame::Integer(4102444800000));
    assert_eq!(h.run("EXPIRE k -1"), Frame::Integer(1));
    assert_eq!(
        h.run("EXISTS k"),
        Frame::Integer(0),
        "a past expiry deletes the key"
    );
}

#[test]
fn rename_copy_and_delete() {
    let mut h = Harness::new();
    assert_eq!(h.run("RENAME a b"), err("ERR no such key"));
    h.run("SET a 1");
    h.run("EXPIRE a 100");
    assert_eq!(h.run("RENAME a b"), Frame::ok());
    assert!(matches!(h.run("TTL b"), Frame::Integer(99 | 100)));
    h.run("SET c 2");
    assert_eq!(h.run("RENAMENX b c"), Frame::Integer(0));
    assert_eq!(h.run("COPY b c"), Frame::Integer(0));
    assert_eq!(h.run("COPY b c REPLACE"), Frame::Integer(1));
    assert_eq!(
        h.run("COPY b b"),
        err("ERR source and destination objects are the same")
    );
    assert_eq!(h.run("COPY b x DB 1"), Frame::Integer(1));
    assert_eq!(h.run("COPY b x DB 99"), err("ERR DB index is out of range"));
    h.run("SELECT 1");
    assert_eq!(h.run("GET x"), bulk("1"));
    h.run("SELECT 0");
    assert_eq!(h.run("EXISTS b b c nokey"), Frame::Integer(3));
    assert_eq!(h.run("DEL b c nokey"), Frame::Integer(2));
    assert_eq!(h.run("TYPE b"), Frame::simple("none"));
    h.run("SET n 12");
    assert_eq!(h.run("TYPE n"), Frame::simple("string"));
    assert_eq!(h.run("OBJECT ENCODING n"), bulk("int"));
    h.run("SET s hello");
    assert_eq!(h.run("OBJECT ENCODING s"), bulk("embstr"));
    assert_eq!(h.run("OBJECT ENCODING nokey"), Frame::Null);
}

#[test]
fn keys_and_scan_walk_everything_once() {
    let mut h = Harness::new();
    for i in 0..57 {
        h.run(&format!("SET user:{i} x"));
    }
    h.run("SET other y");
    let Frame::Array(keys) = h.run("KEYS user:*") else {
        panic!()
    };
    assert_eq!(keys.len(), 57);
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let Frame::Array(reply) = h.run(&format!("SCAN {cursor} MATCH user:* COUNT 10")) else {
            panic!()
        };
        let [Frame::Bulk(next), Frame::Array(batch)] = &reply[..] else {
            panic!("{reply:?}")
        };
        for k in batch {
            let Frame::Bulk(k) = k else { panic!() };
            assert!(seen.insert(k.clone()), "duplicate {k:?}");
        }
        cursor = String::from_utf8(next.to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 57);
    assert_eq!(h.run("SCAN x"), err("ERR invalid cursor"));
    assert_eq!(h.run("SCAN 0 COUNT 0"), err("ERR syntax error"));
}
