#!/usr/bin/env python3
"""Why the WAL writes zeros ahead (storage/src/wal/writer.rs, step 4): the cost of one
2 KiB pwrite + fdatasync at the end of a file that grows with each write, into space reserved
with fallocate, and into space already written with zeros.
Usage: fdatasync.py [DIR] [N]  (DIR on the disk under test, default /tmp; N writes, default 2000)."""
import os
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
SIZE = 2048


def run(mode):
    path = os.path.join(DIR, f"fdatasync-{mode}.bin")
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC)
    try:
        if mode == "zeroed":
            os.write(fd, b"\0" * (N * SIZE))
            os.fsync(fd)
        elif mode == "fallocated":
            os.posix_fallocate(fd, 0, N * SIZE)
            os.fsync(fd)
        buf = b"x" * SIZE
        t = time.perf_counter()
        for i in range(N):
            os.pwrite(fd, buf, i * SIZE)
            os.fdatasync(fd)
        return (time.perf_counter() - t) / N * 1e6
    finally:
        os.close(fd)
        os.remove(path)


for rnd in range(3):
    print(" ".join(f"{mode}={run(mode):.0f}us" for mode in ("growing", "fallocated", "zeroed")))
