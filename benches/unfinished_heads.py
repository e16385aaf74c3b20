#!/usr/bin/env python3
"""What an unfinished request head costs the server: N connections each send the start of an
HTTP/1.1 request with one header of SIZE bytes, and never finish it. Reports the server's
resident memory (VmRSS of PID) before and with them connected, the cost per connection, and how
many the server closed (a head past its bound is answered 431 and closed).

    target/dist/ember-serve --grpc-port 0 --client-timeout 60s &
    python3 benches/unfinished_heads.py 127.0.0.1:8080 $! 300 400000

Arguments: HOST:PORT, the server's PID, connections (default 300), header bytes (default
400000, just under hyper's default buffer of about 400 KiB).
"""
import socket
import sys
import time

addr, pid = sys.argv[1], int(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
size = int(sys.argv[4]) if len(sys.argv) > 4 else 400_000
host, port = addr.rsplit(":", 1)


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


head = b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-filler: " + b"a" * size
before = rss_kib()
held = []
for _ in range(count):
    s = socket.create_connection((host, int(port)))
    s.settimeout(2)
    try:
        s.sendall(head)
    except OSError:
        pass  # the server stopped reading (or closed): what it holds is what is measured
    held.append(s)
time.sleep(2)
after = rss_kib()
refused = 0
for s in held:
    s.setblocking(False)
    try:
        refused += s.recv(64).startswith(b"HTTP/1.1 431")
    except OSError:
        pass
print(
    f"{count} connections, {size} header bytes each: RSS {before} KiB -> {after} KiB, "
    f"{(after - before) / count:.1f} KiB per connection; {refused} answered 431"
)
