#!/usr/bin/env python3
"""While FLUSHALL runs over ~1 M keys, how long do other connections' reads and writes take?

    flushall-stall.py PORT        # the server already holds the keys (redis-benchmark -t set -r 1000000)

One thread GETs and one SETs in a loop on their own connections (inline commands, one at a
time); the main thread sends FLUSHALL. Prints FLUSHALL's duration and the longest GET and
SET that overlapped it. A server that frees the keys in the background (tierkv from issue
#11's O(1) flush; Redis with ASYNC) is watched until INFO's `lazyfree_pending_objects` is 0,
and the window counts that reclaim too, and then as long again (at least 2 s): what
freeing costs afterwards (GC removing the old keys, the allocator giving memory back)
counts against the flush.
"""
import socket, sys, threading, time

port = int(sys.argv[1])

def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, s.makefile("rb")

def call(conn, line):
    s, f = conn
    s.sendall(line)
    reply = f.readline()
    if reply.startswith(b"$") and not reply.startswith(b"$-1"):
        f.readline()
    return reply

stop = False
worst = {"GET": 0.0, "SET": 0.0}
window = [None, None]

def loop(kind, line):
    conn = connect()
    while not stop:
        t0 = time.perf_counter()
        call(conn, line)
        t1 = time.perf_counter()
        if window[0] is not None and t1 >= window[0] and (window[1] is None or t0 <= window[1]):
            worst[kind] = max(worst[kind], t1 - t0)

threads = [threading.Thread(target=loop, args=("GET", b"GET key:000000000001\r\n")),
           threading.Thread(target=loop, args=("SET", b"SET other:key v\r\n"))]
for t in threads:
    t.start()
time.sleep(0.5)
flusher = connect()
window[0] = time.perf_counter()
call(flusher, b"FLUSHALL\r\n")
replied = time.perf_counter()

def pending():
    s, f = flusher
    s.sendall(b"INFO memory\r\n")
    size = int(f.readline()[1:])
    body = f.read(size + 2).decode()
    for line in body.splitlines():
        if line.startswith("lazyfree_pending_objects:"):
            return int(line.split(":")[1])
    return 0

while pending() > 0:
    time.sleep(0.005)
freed = time.perf_counter()
# Then as long again, at least 2 s: what the freeing costs afterwards (GC removing the old
# keys, the allocator giving memory back) is the flush's too.
time.sleep(max(2.0, freed - window[0]))
window[1] = time.perf_counter()
time.sleep(0.3)
stop = True
for t in threads:
    t.join()
print(f"FLUSHALL replied in {1000 * (replied - window[0]):.1f} ms, keys freed after "
      f"{1000 * (freed - window[0]):.0f} ms; longest GET in {window[1] - window[0]:.1f} s "
      f"{1000 * worst['GET']:.1f} ms, longest SET {1000 * worst['SET']:.1f} ms")
