//! In-process tests of the string commands: parse + execute on an in-memory engine, replies
//! compared byte for byte with what Redis 7 answers.

use crate::cmd::tests::{bulk, err, Harness};
use crate::resp::Frame;

#[test]
fn set_options_follow_redis() {
    let mut h = Harness::new();
    assert_eq!(h.run("SET k v"), Frame::ok());
    assert_eq!(h.run("SET k v2 NX"), Frame::Null);
    assert_eq!(h.run("SET k v2 XX GET"), bulk("v"));
    assert_eq!(h.run("SET n v XX"), Frame::Null);
    assert_eq!(
        h.run("SET k v EX 0"),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(h.run("SET k v NX XX"), err("ERR syntax error"));
    assert_eq!(h.run("SET k v EX 10 PX 10"), err("ERR syntax error"));
    assert_eq!(
        h.run("SET k v EX ten"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(h.run("SET k v3 IFEQ nope"), Frame::Null);
    assert_eq!(h.run("SET k v3 IFEQ v2"), Frame::ok());
    assert_eq!(h.run("GET k"), bulk("v3"));
    assert_eq!(h.run("SET k v4 EX 100"), Frame::ok());
    assert_eq!(h.run("SET k v5 KEEPTTL"), Frame::ok());
    assert!(matches!(h.run("TTL k"), Frame::Integer(99 | 100)));
    assert_eq!(h.run("SET k v6"), Frame::ok());
    assert_eq!(h.run("TTL k"), Frame::Integer(-1));
}

#[test]
fn counters_and_their_errors() {
    let mut h = Harness::new();
    assert_eq!(h.run("INCR c"), Frame::Integer(1));
    assert_eq!(h.run("INCRBY c 10"), Frame::Integer(11));
    assert_eq!(h.run("DECRBY c 20"), Frame::Integer(-9));
    assert_eq!(h.run("DECR c"), Frame::Integer(-10));
    h.run("SET big 9223372036854775807");
    assert_eq!(
        h.run("INCR big"),
        err("ERR increment or decrement would overflow")
    );
    h.run("SET s abc");
    assert_eq!(
        h.run("INCR s"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        h.run("INCRBY c x"),
        err("ERR value is not an integer or out of range")
    );
    h.run("SET f 10.50");
    assert_eq!(h.run("INCRBYFLOAT f 0.1"), bulk("10.6"));
    assert_eq!(h.run("INCRBYFLOAT f -5"), bulk("5.6"));
    assert_eq!(
        h.run("INCRBYFLOAT s 1"),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        h.run("INCRBYFLOAT f inf"),
        err("ERR increment would produce NaN or Infinity")
    );
}

#[test]
fn ranges_and_appends() {
    let mut h = Harness::new();
    assert_eq!(h.run("APPEND s Hello"), Frame::Integer(5));
    assert_eq!(h.run("APPEND s \" World\""), Frame::Integer(11));
    assert_eq!(h.run("GETRANGE s 0 4"), bulk("Hello"));
    assert_eq!(h.run("GETRANGE s -5 -1"), bulk("World"));
    assert_eq!(h.run("GETRANGE s 5 1"), bulk(""));
    assert_eq!(h.run("GETRANGE s 0 100"), bulk("Hello World"));
    assert_eq!(h.run("STRLEN s"), Frame::Integer(11));
    assert_eq!(h.run("SETRANGE s 6 Redis"), Frame::Integer(11));
    assert_eq!(h.run("GET s"), bulk("Hello Redis"));
    assert_eq!(h.run("SETRANGE z 3 x"), Frame::Integer(4));
    assert_eq!(h.run("GET z"), bulk("\0\0\0x"));
    assert_eq!(h.run("SETRANGE z -1 x"), err("ERR offset is out of range"));
}

#[test]
fn lcs_matches_redis_examples() {
    let mut h = Harness::new();
    h.run("MSET key1 ohmytext key2 mynewtext");
    assert_eq!(h.run("LCS key1 key2"), bulk("mytext"));
    assert_eq!(h.run("LCS key1 key2 LEN"), Frame::Integer(6));
    let range = |a: i64, b: i64| Frame::Array(vec![Frame::Integer(a), Frame::Integer(b)]);
    assert_eq!(
        h.run("LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN"),
        Frame::Map(vec![
            (
                bulk("matches"),
                Frame::Array(vec![Frame::Array(vec![
                    range(4, 7),
                    range(5, 8),
                    Frame::Integer(4)
                ])])
            ),
            (bulk("len"), Frame::Integer(6)),
        ])
    );
    assert_eq!(
        h.run("LCS key1 key2 IDX"),
        Frame::Map(vec![
            (
                bulk("matches"),
                Frame::Array(vec![
                    Frame::Array(vec![range(4, 7), range(5, 8)]),
                    Frame::Array(vec![range(2, 3), range(0, 1)])
                ])
            ),
            (bulk("len"), Frame::Integer(6)),
        ])
    );
}

#[test]
fn multi_key_and_conditional_sets() {
    let mut h = Harness::new();
    assert_eq!(h.run("MSET a 1 b 2"), Frame::ok());
    assert_eq!(
        h.run("MSET a 1 b"),
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(
        h.run("MGET a b c"),
        Frame::Array(vec![bulk("1"), bulk("2"), Frame::Null])
    );
    assert_eq!(h.run("MSETNX c 3 a 9"), Frame::Integer(0));
    assert_eq!(h.run("MSETNX c 3 d 4"), Frame::Integer(1));
    assert_eq!(h.run("SETNX a x"), Frame::Integer(0));
    assert_eq!(h.run("GETSET a z"), bulk("1"));
    assert_eq!(h.run("GETDEL a"), bulk("z"));
    assert_eq!(h.run("GETDEL a"), Frame::Null);
    assert_eq!(h.run("SETEX e 100 v"), Frame::ok());
    assert_eq!(
        h.run("SETEX e 0 v"),
        err("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(h.run("PSETEX e 100000 v"), Frame::ok());
    assert!(matches!(h.run("TTL e"), Frame::Integer(99 | 100)));
    assert_eq!(h.run("GETEX e PERSIST"), bulk("v"));
    assert_eq!(h.run("TTL e"), Frame::Integer(-1));
    assert_eq!(
        h.run("GETEX e EX 0"),
        err("ERR invalid expire time in 'getex' command")
    );
    assert_eq!(h.run("GETEX e PERSIST EX 1"), err("ERR syntax error"));
}

#[test]
fn versioned_cas() {
    let mut h = Harness::new();
    assert_eq!(
        h.run("GETVER k"),
        Frame::Array(vec![Frame::Null, Frame::Integer(0)])
    );
    let Frame::Integer(v1) = h.run("SETVER k 0 a") else {
        panic!("setver on a new key must reply with the version")
    };
    assert!(v1 > 0);
    assert_eq!(h.run("SETVER k 0 b"), Frame::Null);
    assert_eq!(
        h.run("GETVER k"),
        Frame::Array(vec![bulk("a"), Frame::Integer(v1)])
    );
    let Frame::Integer(v2) = h.run(&format!("CAS k {v1} b")) else {
        panic!()
    };
    assert!(v2 > v1);
    assert_eq!(h.run(&format!("SETVER k {v1} c")), Frame::Null);
    assert_eq!(h.run("GET k"), bulk("b"));
}
