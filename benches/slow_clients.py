#!/usr/bin/env python3
"""Slow-loris check: N connections each send a POST's headers and one byte of a 100 KB body,
then nothing. Reports how many got an HTTP answer (and which status) and were closed by the
server, how long that took, and whether ordinary requests were answered meanwhile.

    target/dist/ember-serve --client-timeout 5s --grpc-port 0 &
    python3 benches/slow_clients.py http://127.0.0.1:8080 900 20

Arguments: base URL, connections (default 900), seconds to wait for them (default 40).
Exits 0 only if the ordinary request got 200 and every trickling connection got 408 and was
closed in time (what .ci/test.sh checks).
"""
import asyncio
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit


async def trickle(host, port, started, results):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        results.append(("connect-failed", 0.0, str(e)))
        return
    writer.write(
        b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 102400\r\n\r\n{"
    )
    await writer.drain()
    try:
        answer = await reader.read()  # until the server closes
    except OSError:
        answer = b""
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "closed"
    results.append((status, time.monotonic() - started, ""))
    writer.close()


def probe(base):
    req = urllib.request.Request(
        f"{base}/v1/predict",
        data=open("tests/data/predict-zero.json", "rb").read(),
        headers={"content-type": "application/json"},
    )
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, (time.monotonic() - t) * 1000
    except urllib.error.HTTPError as e:  # e.g. 503 over --max-connections
        return e.code, (time.monotonic() - t) * 1000


async def main():
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 900
    wait = float(sys.argv[3]) if len(sys.argv) > 3 else 40
    url = urlsplit(base)
    results = []
    started = time.monotonic()
    tasks = [asyncio.create_task(trickle(url.hostname, url.port, started, results)) for _ in range(n)]
    await asyncio.sleep(1)
    probe_status, ms = await asyncio.to_thread(probe, base)
    print(f"ordinary request while {n} connections trickle: {probe_status} in {ms:.1f} ms")
    done, pending = await asyncio.wait(tasks, timeout=wait)
    for t in pending:
        t.cancel()
    by_status = {}
    for answer, _, _ in results:
        by_status[answer] = by_status.get(answer, 0) + 1
    times = sorted(t for _, t, _ in results)
    print(f"{n} trickling connections: {len(results)} ended within {wait:g} s, {len(pending)} still open")
    print(f"answers: {dict(sorted(by_status.items()))}")
    if times:
        print(f"closed after {times[0]:.1f} s (first) to {times[-1]:.1f} s (last)")
    return 0 if probe_status == 200 and not pending and by_status == {"408": n} else 1


sys.exit(asyncio.run(main()))
