#!/usr/bin/env python3
"""Silent HTTP/2 clients against both ports (#30): N connections per port send the HTTP/2
preface (or part of it, or the preface and SETTINGS) and then nothing, never answering a PING.
Measures, while they are connected, the latency of fresh clients (a new connection each:
REST GET /v2/health/ready, gRPC ServerReady through tritonclient is not needed: a raw h2c
request is enough), how long until the server has closed them all, and how long SIGTERM takes
to exit with them connected.

    BIN=target/dist/ember-serve python3 benches/silent_http2.py 1000

Exits 1 if a fresh client waited a second or more (p99) with them connected, if any silent
connection was still open after 60 s, or if SIGTERM did not exit 0 within --shutdown-delay + 1 s
(what .ci/test.sh checks, with 300 per port).

Runs the binary itself (ports 18195/18196, --client-timeout 5s, HTTP/2 pings every 5 s with
5 s to answer, --shutdown-delay 1s); prints one line per measurement.
"""
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
binary = os.environ.get("BIN", "target/dist/ember-serve")
rest, grpc = 18195, 18196
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * count + 512)), hard))

server = subprocess.Popen(
    [binary, "--host", "127.0.0.1", "--port", str(rest), "--grpc-port", str(grpc),
     "--device", "cpu", "--client-timeout", "5s", "--http2-keep-alive-interval", "5s",
     "--http2-keep-alive-timeout", "5s", "--shutdown-delay", "1s"],
    stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
)
base = f"http://127.0.0.1:{rest}"
for _ in range(200):
    try:
        if urllib.request.urlopen(f"{base}/health/ready", timeout=1).status == 200:
            break
    except OSError:
        time.sleep(0.1)


def fresh_rest():
    started = time.perf_counter()
    urllib.request.urlopen(f"{base}/v2/health/ready", timeout=5).read()
    return time.perf_counter() - started


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\0\0\0\x04\0\0\0\0\0"
# HEADERS on stream 1 (END_STREAM | END_HEADERS): POST /inference.GRPCInferenceService/ServerReady
# would need a body; GET /grpc.health.v1... likewise. An h2c GET of a gRPC path is answered
# (with a gRPC error) all the same, which is all a latency probe needs.
PATH = b"/inference.GRPCInferenceService/ServerLive"
BLOCK = bytes([0x82, 0x86, 0x44, len(PATH)]) + PATH + bytes([0x41, 1]) + b"x"
HEADERS = len(BLOCK).to_bytes(3, "big") + bytes([1, 5, 0, 0, 0, 1]) + BLOCK


def fresh_grpc():
    started = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", grpc), timeout=5)
    s.sendall(PREFACE + SETTINGS + HEADERS)
    got = b""
    while True:  # until a HEADERS frame (type 1) for stream 1 arrives
        got += s.recv(65536)
        i = 0
        while i + 9 <= len(got):
            n = int.from_bytes(got[i:i + 3], "big")
            if got[i + 3] == 1:
                s.close()
                return time.perf_counter() - started
            i += 9 + n
        if not got:
            raise RuntimeError("closed")


def p99(samples):
    return sorted(samples)[int(len(samples) * 0.99) - 1] * 1e3


baseline = {"rest": [fresh_rest() for _ in range(200)], "grpc": [fresh_grpc() for _ in range(200)]}
firsts = [PREFACE, PREFACE[:7], PREFACE + SETTINGS]
silent = []
opened = time.time()
for port in (rest, grpc):
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(firsts[i % 3])
        silent.append(s)
loaded = {"rest": [fresh_rest() for _ in range(200)], "grpc": [fresh_grpc() for _ in range(200)]}
for kind in ("rest", "grpc"):
    print(f"{kind}: fresh-connection p50/p99 {statistics.median(baseline[kind]) * 1e3:.2f}/"
          f"{p99(baseline[kind]):.2f} ms alone, {statistics.median(loaded[kind]) * 1e3:.2f}/"
          f"{p99(loaded[kind]):.2f} ms with {count} silent clients on each port")


def closed(s):
    s.setblocking(False)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


open_ones = list(silent)
while open_ones and time.time() - opened < 60:
    open_ones = [s for s in open_ones if not closed(s)]
    time.sleep(0.2)
print(f"all {2 * count} silent connections closed by the server after {time.time() - opened:.1f} s"
      if not open_ones else f"{len(open_ones)} still open after 60 s")

more = []
for port in (rest, grpc):
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(firsts[i % 3])
        more.append(s)
time.sleep(0.5)
signalled = time.time()
server.send_signal(signal.SIGTERM)
code = server.wait(timeout=60)
took = time.time() - signalled
print(f"SIGTERM with {2 * count} silent clients connected: exit {code} after {took:.2f} s "
      f"(--shutdown-delay 1s)")
failures = [f"{kind} p99 {p99(loaded[kind]):.0f} ms" for kind in loaded if p99(loaded[kind]) >= 1000]
failures += [f"{len(open_ones)} silent connections never closed"] if open_ones else []
failures += [f"exit {code} after {took:.2f} s"] if code != 0 or took > 2.0 else []
if failures:
    sys.exit("silent HTTP/2 clients: " + "; ".join(failures))
