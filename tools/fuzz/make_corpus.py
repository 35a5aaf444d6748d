#!/usr/bin/env python3
"""Writes the seed corpus from docs/FORMATS.md alone (an independent encoder of the formats).

Usage: python3 tools/fuzz/make_corpus.py   (from the repository root or tools/fuzz)
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def wal_header(first_lsn):
    body = b"TKVWAL\r\n" + struct.pack("<HHQ", 1, 0, first_lsn)
    return body + struct.pack("<I", crc(body))


def wal_frame(lsn, payload):
    c = crc(struct.pack("<I", len(payload)) + struct.pack("<Q", lsn) + payload)
    return struct.pack("<IIQ", len(payload), c, lsn) + payload


def ckpt(snapshot_ts, redo_lsn, records):
    header = b"TKVCKPT\n" + struct.pack("<HHIQQI", 1, 0, 0, snapshot_ts, redo_lsn, 65536)
    header += struct.pack("<I", crc(header))
    raw = b"".join(struct.pack("<BI", 0, len(r)) + r for r in records)
    prefix = struct.pack("<BBHIII", 1, 0, 0, len(records), len(raw), len(raw))
    block = prefix + struct.pack("<I", crc(prefix + raw)) + raw
    body = header + block
    footer = b"TKVCKEND" + struct.pack(
        "<QQQQI", 1, len(records), sum(len(r) for r in records), len(body), crc(body)
    )
    footer += struct.pack("<I", crc(footer))
    return body + footer


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


frames = b"".join(wal_frame(i + 1, b"set k%d v%d" % (i, i)) for i in range(5))
# The wal_reader target's first byte: bit 0 set = the target prepends a valid header itself.
write("wal_reader", "five-records", b"\x00" + wal_header(1) + frames)
write("wal_reader", "five-records-headerless", b"\x01" + frames)
write("wal_reader", "torn-tail", b"\x00" + wal_header(1) + frames[:-4])
write("wal_reader", "empty-segment", b"\x00" + wal_header(1))
write("wal_reader", "zero-tail", b"\x01" + frames + b"\x00" * 32)
write("checkpoint_reader", "three-records", ckpt(7, 42, [b"k1=v1", b"", b"k3=" + b"x" * 100]))
write("checkpoint_reader", "empty", ckpt(1, 1, []))
write("checkpoint_reader", "truncated", ckpt(7, 42, [b"k1=v1"])[:-10])
