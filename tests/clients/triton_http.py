"""A stock `tritonclient.http` client against a running ember-serve (default settings: binary
tensor data both ways), checked against ember-serve's own /v1/predict answer; then the
extensions Triton's tools use: model configuration, statistics, classification, compression.

Usage: python3 tests/clients/triton_http.py [host:port]   (run by .ci/run)
"""
import gzip
import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

url = sys.argv[1] if len(sys.argv) > 1 else "localhost:8080"
rows = np.loadtxt(
    gzip.open(Path(__file__).resolve().parents[1] / "data" / "digits.csv.gz", "rt"),
    delimiter=",",
    max_rows=8,
)
images, labels = rows[:, :64].astype(np.float32), rows[:, 64].astype(np.int64)

client = httpclient.InferenceServerClient(url=url)
assert client.is_server_live() and client.is_server_ready()
assert client.is_model_ready("digits-cnn")
meta = client.get_model_metadata("digits-cnn")
assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 64]}, meta
assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

inp = httpclient.InferInput("input", list(images.shape), "FP32")
inp.set_data_from_numpy(images)  # binary_data=True by default
# No outputs listed: the client asks for every output in binary.
result = client.infer("digits-cnn", [inp], request_id="triton-1")
probs, predicted = result.as_numpy("probabilities"), result.as_numpy("label")
assert probs.shape == (8, 10) and predicted.shape == (8,), (probs.shape, predicted.shape)
assert result.get_response()["id"] == "triton-1"

# Requested outputs, one binary and one JSON.
outputs = [
    httpclient.InferRequestedOutput("label", binary_data=False),
    httpclient.InferRequestedOutput("probabilities", binary_data=True),
]
again = client.infer("digits-cnn", [inp], outputs=outputs, model_version="2")
assert (again.as_numpy("label") == predicted).all()

# The same images through ember-serve's own API give the same answers.
req = urllib.request.Request(
    f"http://{url}/v1/predict",
    data=json.dumps({"inputs": images.tolist()}).encode(),
    headers={"content-type": "application/json"},
)
v1 = json.load(urllib.request.urlopen(req))
v1_probs = np.array([p["probabilities"] for p in v1["predictions"]], dtype=np.float32)
assert np.array_equal(v1_probs, probs), "V2 and /v1/predict disagree"
accuracy = float((predicted == labels).mean())
assert accuracy >= 0.875, accuracy

# Model configuration (what perf_analyzer reads first).
config = client.get_model_config("digits-cnn")
assert config["max_batch_size"] == 64 and config["backend"] == "burn", config
assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [64]}], config
assert config["instance_group"][0]["kind"] == "KIND_CPU", config
served_labels = json.loads(config["parameters"]["labels"]["string_value"])

# Classification: the top 3 classes per image, "<probability>:<index>:<label>".
top3 = client.infer(
    "digits-cnn",
    [inp],
    outputs=[httpclient.InferRequestedOutput("probabilities", class_count=3)],
)
classes = top3.as_numpy("probabilities")
assert classes.shape == (8, 3), classes.shape
for row, p in zip(classes, probs):
    want = np.argsort(-p, kind="stable")[:3]
    got = [entry.decode().split(":") for entry in row]
    assert [int(i) for _, i, _ in got] == list(want), (got, want)
    assert all(abs(float(score) - p[int(i)]) < 1e-5 for score, i, _ in got), got
    assert [label for _, _, label in got] == [served_labels[i] for i in want], got

# Compressed request and response bodies.
zipped = client.infer(
    "digits-cnn",
    [inp],
    request_compression_algorithm="gzip",
    response_compression_algorithm="gzip",
)
assert np.array_equal(zipped.as_numpy("probabilities"), probs)
deflated = client.infer("digits-cnn", [inp], request_compression_algorithm="deflate")
assert np.array_equal(deflated.as_numpy("label"), predicted)

# Statistics: this script's requests are in the counts.
stats = client.get_inference_statistics("digits-cnn")["model_stats"][0]
assert stats["name"] == "digits-cnn" and stats["version"] == "2", stats
assert stats["inference_stats"]["success"]["count"] >= 5, stats
assert stats["inference_count"] >= 5 * 8, stats
assert any(b["batch_size"] == 8 for b in stats["batch_stats"]), stats["batch_stats"]
assert "statistics" in client.get_server_metadata()["extensions"]

try:
    client.get_model_metadata("mnist")
    raise AssertionError("unknown model accepted")
except httpclient.InferenceServerException as e:
    assert e.status() == "404" or "404" in str(e), e
print(f"tritonclient {httpclient.__name__}: OK ({int(accuracy * 8)}/8 correct, V2 == /v1)")
