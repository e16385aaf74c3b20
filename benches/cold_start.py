"""Cold start: from exec to the first 200 from /v2/health/ready, which the server gives only after
every model of the repository has loaded its weights and passed its warm-up batches.

    python3 benches/cold_start.py target/dist/ember-serve [RUNS] [-- extra server flags]

Each run starts the binary afresh (the file is in the page cache after the first, as on a node
that pulled the image), polls readiness every 0.5 ms over a new connection, and stops the
server. Prints the median and the slowest run; writes benches/results/cold_start.csv.
"""

import csv
import os
import socket
import statistics
import subprocess
import sys
import time

PORT = 18311


def status(path: str) -> int | None:
    """The HTTP status of GET path, or None while nothing listens."""
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64).decode("latin-1")
            return int(head.split(" ", 2)[1])
    except (ConnectionRefusedError, IndexError, ValueError, OSError):
        return None


def one_run(command: list[str]) -> tuple[float, float]:
    """Seconds to the first answer of any kind (listening) and to the first ready 200."""
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listening = None
    try:
        while time.perf_counter() - started < 30:
            if server.poll() is not None:
                sys.exit(f"the server exited with {server.returncode} before it was ready")
            code = status("/v2/health/ready")
            now = time.perf_counter() - started
            if code is not None and listening is None:
                listening = now
            if code == 200:
                return listening, now
            time.sleep(0.0005)
        sys.exit("not ready after 30 s")
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    args = sys.argv[1:]
    extra = args[args.index("--") + 1 :] if "--" in args else []
    args = args[: args.index("--")] if "--" in args else args
    binary, runs = args[0], int(args[1]) if len(args) > 1 else 20
    command = [binary, "--host", "127.0.0.1", "--port", str(PORT), "--grpc-port", "0",
               "--device", "cpu", *extra]
    one_run(command)  # the binary into the page cache
    results = [one_run(command) for _ in range(runs)]
    os.makedirs("benches/results", exist_ok=True)
    with open("benches/results/cold_start.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["run", "listening_ms", "ready_ms"])
        for i, (listening, ready) in enumerate(results, 1):
            out.writerow([i, f"{listening * 1000:.1f}", f"{ready * 1000:.1f}"])
    ready = [r for _, r in results]
    listening = [l for l, _ in results]
    print(f"{runs} runs of {' '.join(command)}")
    print(f"listening: median {statistics.median(listening) * 1000:.1f} ms")
    print(f"ready:     median {statistics.median(ready) * 1000:.1f} ms, slowest {max(ready) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
