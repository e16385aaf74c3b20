"""Hostile requests against the real binary (#30), as stock clients and raw sockets send them:
shapes whose counts overflow (REST JSON, REST binary, gRPC raw and typed), a request head past
the server's bound, and a gRPC health Watch (grpc's own client) that must end, not hold the
process, when the server is sent SIGTERM.

Usage: BIN=./target/debug/ember-serve python3 tests/clients/hostile.py HTTP_HOST:PORT GRPC_HOST:PORT
(run by .ci/test.sh against its running server; the Watch check starts its own from BIN)
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

http_url = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"
grpc_url = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:8081"
binary = os.environ.get("BIN", "./target/debug/ember-serve")
# Rows that wrap, unchecked, to one row's worth: 2^58 + 1 rows of 64 values (a count of 64),
# and 2^56 + 1 rows of 64 FP32 values (256 bytes).
VALUES_WRAP, BYTES_WRAP = 2**58 + 1, 2**56 + 1
row = np.arange(64, dtype=np.float32) % 17


def post(path, body, headers):
    req = urllib.request.Request(f"http://{http_url}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# 1. Shapes whose element or byte counts overflow: 400 naming the shape, never an answer.
infer = "/v2/models/digits-cnn/infer"
body = {"inputs": [{"name": "input", "shape": [VALUES_WRAP, 64], "datatype": "FP32", "data": row.tolist()}]}
status, answer = post(infer, json.dumps(body).encode(), {"Content-Type": "application/json"})
assert status == 400 and b"holds more values" in answer, (status, answer)
header = {"inputs": [{"name": "input", "shape": [BYTES_WRAP, 64], "datatype": "FP32",
                      "parameters": {"binary_data_size": 256}}]}
head = json.dumps(header).encode()
status, answer = post(infer, head + row.tobytes(), {
    "Content-Type": "application/octet-stream",
    "Inference-Header-Content-Length": str(len(head)),
})
assert status == 400 and b"holds more values" in answer, (status, answer)
stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(grpc_url))
tensor = service_pb2.ModelInferRequest().InferInputTensor(name="input", datatype="FP32", shape=[BYTES_WRAP, 64])
for request in (
    service_pb2.ModelInferRequest(model_name="digits-cnn", inputs=[tensor], raw_input_contents=[row.tobytes()]),
    service_pb2.ModelInferRequest(model_name="digits-cnn", inputs=[service_pb2.ModelInferRequest().InferInputTensor(
        name="input", datatype="FP32", shape=[VALUES_WRAP, 64],
        contents=service_pb2.InferTensorContents(fp32_contents=row.tolist()))]),
):
    try:
        stub.ModelInfer(request, timeout=10)
        raise AssertionError("an overflowing shape was answered over gRPC")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "holds more values" in e.details(), e

# 2. A request head past the bound (32 KiB) is refused (431) and closed, not buffered.
host, port = http_url.rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=10) as s:
    try:
        s.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-filler: " + b"a" * 40_000 + b"\r\n\r\n")
    except OSError:
        pass  # closed while sending: the answer is already there to read
    assert s.recv(64).startswith(b"HTTP/1.1 431"), "a 40 KB head was not refused"

# 3. A health Watch (grpc's own client, as client-side health checking opens) sees SERVING,
# then NOT_SERVING on SIGTERM, then its stream ends: the process exits 0 without waiting for it.
# grpc.health.v1 by hand: HealthCheckRequest{service = 1}, HealthCheckResponse{status = 1}.
SERVICE = b"inference.GRPCInferenceService"
SERVING, NOT_SERVING = 1, 2

server = subprocess.Popen(
    [binary, "--host", "127.0.0.1", "--port", "18197", "--grpc-port", "18198", "--device", "cpu",
     "--log-level", "warn", "--shutdown-delay", "300ms", "--shutdown-timeout", "20s"])
try:
    channel = grpc.insecure_channel("127.0.0.1:18198")
    grpc.channel_ready_future(channel).result(timeout=60)
    watch = channel.unary_stream("/grpc.health.v1.Health/Watch")(
        bytes([0x0A, len(SERVICE)]) + SERVICE)
    seen, ended = [], threading.Event()

    def follow():
        try:
            for reply in watch:  # b"\x08<status>" (empty: status 0, UNKNOWN)
                seen.append(reply[1] if len(reply) > 1 else 0)
        except grpc.RpcError as e:
            seen.append(e.code())
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    deadline = time.time() + 60
    while SERVING not in seen and time.time() < deadline:
        time.sleep(0.05)
    assert SERVING in seen, seen
    signalled = time.time()
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=30)
    took = time.time() - signalled
    assert ended.wait(5), f"the Watch stream never ended: {seen}"
    assert code == 0 and took < 2.0, f"exit {code} after {took:.2f} s with a Watch open"
    assert NOT_SERVING in seen, seen
finally:
    if server.poll() is None:
        server.kill()

print(f"hostile: OK (overflowing shapes refused on 4 paths; 40 KB head 431; a health Watch "
      f"ended on SIGTERM: {[str(s) for s in seen]}, exit 0 in {took:.2f} s)")
