"""A stock `tritonclient.http` client against a running ember-serve (default settings: binary
tensor data both ways), checked against ember-serve's own /v1/predict answer.

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
again = client.infer("digits-cnn", [inp], outputs=outputs, model_version="2.0.0")
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

try:
    client.get_model_metadata("mnist")
    raise AssertionError("unknown model accepted")
except httpclient.InferenceServerException as e:
    assert e.status() == "404" or "404" in str(e), e
print(f"tritonclient {httpclient.__name__}: OK ({int(accuracy * 8)}/8 correct, V2 == /v1)")
