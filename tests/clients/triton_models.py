"""Stock `tritonclient.http` and `tritonclient.grpc` clients against every model a running
ember-serve compiled in from its model repository (weights/<name>/ with model.onnx): metadata,
configuration, readiness, inference with binary/raw tensors, classification where the model has
labels; each answer checked against ONNX Runtime's for the same rows (examples.json). Where the
repository holds weights versions (<name>/<version>/), the newest one at least config.json's
version serves: the server must say so (/v1/models) and answer as that version's examples.json.

Usage: python3 tests/clients/triton_models.py HTTP_HOST:PORT GRPC_HOST:PORT [REPOSITORY]
(run by .ci/test.sh on weights/, the default; by .ci/images.sh on an image's repository)
"""
import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

http_url = sys.argv[1] if len(sys.argv) > 1 else "localhost:8080"
grpc_url = sys.argv[2] if len(sys.argv) > 2 else "localhost:8081"
repository = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).resolve().parents[2] / "weights"
models = sorted(p.parent.name for p in repository.glob("*/model.onnx"))
assert models, f"no model directories in {repository}"

clients = [
    (httpclient, httpclient.InferenceServerClient(url=http_url)),
    (grpcclient, grpcclient.InferenceServerClient(url=grpc_url)),
]


def release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-")[0].split("."))


def serving(name: str, config: dict) -> tuple[str, Path]:
    """The version that serves `name` and the directory holding its examples.json."""
    versions = [p.parent for p in (repository / name).glob("*/manifest.json")]
    newest = max(versions, key=lambda d: release(d.name), default=None)
    if newest is not None and release(newest.name) >= release(config["version"]):
        return newest.name, newest
    return config["version"], repository / name


for name in models:
    config = json.loads((repository / name / "config.json").read_text())
    version, examples_dir = serving(name, config)
    examples = json.loads((examples_dir / "examples.json").read_text())
    with urllib.request.urlopen(f"http://{http_url}/v1/models/{name}") as reply:
        entry = json.load(reply)
    assert entry["version"] == version, (name, entry["version"], version, entry.get("weights"))
    for module, client in clients:
        kind = module.__name__
        assert client.is_model_ready(name), (kind, name)
        as_json = {"as_json": True} if module is grpcclient else {}
        meta = client.get_model_metadata(name, **as_json)
        names = [t["name"] for t in meta["inputs"]]
        assert names == [t["name"] for t in config["inputs"]], (kind, meta)
        model_config = client.get_model_config(name, **as_json)
        model_config = model_config.get("config", model_config)
        assert int(model_config["max_batch_size"]) == config["max_batch"], (kind, model_config)

        inputs = []
        for t in config["inputs"]:
            values = np.array(examples["inputs"][t["name"]], dtype=np.float32)
            inp = module.InferInput(t["name"], list(values.shape), "FP32")
            inp.set_data_from_numpy(values)  # binary (HTTP) / raw contents (gRPC)
            inputs.append(inp)
        result = client.infer(name, inputs, request_id=f"{kind}-{name}")
        for t in config["outputs"]:
            want = np.array(examples["outputs"][t["name"]], dtype=np.float32)
            got = result.as_numpy(t["name"])
            assert got is not None and got.shape == want.shape, (kind, name, t["name"], got)
            assert np.allclose(got, want, rtol=1e-4, atol=1e-5), (kind, name, got, want)
            if t.get("labels"):
                top = client.infer(
                    name,
                    inputs,
                    outputs=[module.InferRequestedOutput(t["name"], class_count=1)],
                ).as_numpy(t["name"])
                for row, probs in zip(top, want):
                    _, index, label = row[0].decode().split(":")
                    assert int(index) == int(np.argmax(probs)), (kind, name, row, probs)
                    assert label == t["labels"][int(index)], (kind, name, row)
        print(f"{kind}: {name} {version} OK ({len(want)} rows match ONNX Runtime)")
