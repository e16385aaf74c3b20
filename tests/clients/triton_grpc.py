"""A stock `tritonclient.grpc` client against a running ember-serve's gRPC port: health,
metadata, configuration, statistics, inference with numpy inputs (raw tensors, as the client
sends them) and requested outputs with classification, checked against ember-serve's own
/v1/predict answer on the same images; then the error codes a client sees.

Usage: python3 tests/clients/triton_grpc.py GRPC_HOST:PORT HTTP_HOST:PORT   (run by .ci/test.sh)
"""
import gzip
import json
import sys
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

grpc_url = sys.argv[1] if len(sys.argv) > 1 else "localhost:8081"
http_url = sys.argv[2] if len(sys.argv) > 2 else "localhost:8080"
rows = np.loadtxt(
    gzip.open(Path(__file__).resolve().parents[1] / "data" / "digits.csv.gz", "rt"),
    delimiter=",",
)
# The last 64 images of the shipped data set, and their labels.
images, labels = rows[-64:, :64].astype(np.float32), rows[-64:, 64].astype(np.int64)

client = grpcclient.InferenceServerClient(url=grpc_url)
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("digits-cnn") and client.is_model_ready("digits-cnn", "2")
server = client.get_server_metadata(as_json=True)
assert server["name"] == "ember-serve" and "classification" in server["extensions"], server
meta = client.get_model_metadata("digits-cnn", as_json=True)
assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": ["-1", "64"]}, meta
config = client.get_model_config("digits-cnn", as_json=True)["config"]
assert config["max_batch_size"] == 64 and config["input"][0]["data_type"] == "TYPE_FP32", config

before = client.get_inference_statistics("digits-cnn", as_json=True)["model_stats"][0]

inp = grpcclient.InferInput("input", list(images.shape), "FP32")
inp.set_data_from_numpy(images)
result = client.infer("digits-cnn", [inp], request_id="grpc-1")
probs, predicted = result.as_numpy("probabilities"), result.as_numpy("label")
assert probs.shape == (64, 10) and predicted.shape == (64,), (probs.shape, predicted.shape)
assert result.get_response().id == "grpc-1"

# The same images through ember-serve's own API give the same answers.
req = urllib.request.Request(
    f"http://{http_url}/v1/predict",
    data=json.dumps({"inputs": images.tolist()}).encode(),
    headers={"content-type": "application/json"},
)
v1 = json.load(urllib.request.urlopen(req))
v1_probs = np.array([p["probabilities"] for p in v1["predictions"]], dtype=np.float32)
assert np.array_equal(v1_probs, probs), "gRPC and /v1/predict disagree"
accuracy = float((predicted == labels).mean())
assert accuracy >= 0.9, accuracy

# Requested outputs, in order, one with the classification extension (top 3 as BYTES).
outputs = [
    grpcclient.InferRequestedOutput("label"),
    grpcclient.InferRequestedOutput("probabilities", class_count=3),
]
ranked = client.infer("digits-cnn", [inp], outputs=outputs, model_version="2")
assert (ranked.as_numpy("label") == predicted).all()
top = ranked.as_numpy("probabilities")
assert top.shape == (64, 3), top.shape
first = top[0][0].decode()
assert first.split(":")[1] == str(predicted[0]), first

# A UINT8 input (pixel values are small integers) gives the same labels.
small = grpcclient.InferInput("input", list(images.shape), "UINT8")
small.set_data_from_numpy(images.astype(np.uint8))
assert (client.infer("digits-cnn", [small]).as_numpy("label") == predicted).all()

after = client.get_inference_statistics("digits-cnn", as_json=True)["model_stats"][0]
counted = int(after.get("inference_count", 0)) - int(before.get("inference_count", 0))
# Three gRPC inferences and the /v1/predict one: both surfaces share one queue and its statistics.
assert counted == 4 * 64, f"statistics counted {counted} inferences, not 4 x 64"


def code_of(call):
    try:
        call()
    except InferenceServerException as e:
        return e.status()
    raise AssertionError("no error")


assert code_of(lambda: client.get_model_metadata("mnist")) == "StatusCode.NOT_FOUND"
bad = grpcclient.InferInput("input", [1, 63], "FP32")
bad.set_data_from_numpy(np.zeros((1, 63), dtype=np.float32))
assert code_of(lambda: client.infer("digits-cnn", [bad])) == "StatusCode.INVALID_ARGUMENT"
bright = grpcclient.InferInput("input", [1, 64], "FP32")
bright.set_data_from_numpy(np.full((1, 64), 17, dtype=np.float32))
try:
    client.infer("digits-cnn", [bright])
    raise AssertionError("a pixel of 17 was accepted")
except InferenceServerException as e:
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "inputs[0][0] = 17" in e.message(), e

# Health checking, as Kubernetes' gRPC probe asks it: grpc.health.v1.Health/Check with
# HealthCheckRequest{service} (field 1, a string), answered HealthCheckResponse{status} (field 1,
# SERVING = 1), hand-encoded so no further package is needed.
service = b"inference.GRPCInferenceService"
with grpc.insecure_channel(grpc_url) as channel:
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    reply = check(b"\x0a" + bytes([len(service)]) + service, timeout=5)
    assert reply == b"\x08\x01", reply

print(
    f"tritonclient.grpc: OK against {grpc_url} (64 images agree with /v1/predict, accuracy "
    f"{accuracy:.3f}; requested outputs, classification, UINT8, statistics, NOT_FOUND and "
    f"INVALID_ARGUMENT, health SERVING)"
)
