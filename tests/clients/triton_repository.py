"""Triton's model repository extension driven by the stock clients, as an operator would: a new
weights version appears in the repository, `load_model` swaps it in, a config override loads two
versions side by side, `unload_model` takes the model out, and a load brings it back; over
tritonclient.http and tritonclient.grpc alike. Bad calls (no admin key, an inference key, an
unknown model, a config that changes what cannot change) are refused, and the serving version
still answers after each.

Usage: python3 tests/clients/triton_repository.py HTTP_HOST:PORT GRPC_HOST:PORT REPOSITORY ADMIN_KEY
(run by .ci/test.sh against a server in --model-control-mode explicit on a copy of weights/)
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

http_url, grpc_url, repository, admin_key = sys.argv[1:5]
repository = Path(repository)
root = Path(__file__).resolve().parents[2]
MODEL = "breast-cancer"
admin = {"authorization": f"Bearer {admin_key}"}
http = httpclient.InferenceServerClient(url=http_url)
grpc = grpcclient.InferenceServerClient(url=grpc_url)
row = np.array(
    json.loads((root / "weights/breast-cancer/examples.json").read_text())["inputs"]["features"][:1],
    dtype=np.float32,
)


def answered_by(client, module, version=""):
    """The full version that answered one inference (the response's parameters say it)."""
    inp = module.InferInput("features", list(row.shape), "FP32")
    inp.set_data_from_numpy(row)
    result = client.infer(MODEL, [inp], model_version=version)
    response = result.get_response()
    if module is httpclient:
        assert response["model_version"] == "1", response
        return response["parameters"]["model_version"]
    assert response.model_version == "1", response
    return response.parameters["model_version"].string_param


def index(client):
    """{version: state} of MODEL in the repository index."""
    if client is http:
        models = client.get_model_repository_index(headers=admin)
    else:
        models = client.get_model_repository_index(headers=admin, as_json=True)["models"]
    return {m["version"]: m.get("state", "") for m in models if m["name"] == MODEL}


def refused(call, says):
    try:
        call()
    except InferenceServerException as e:
        assert says in str(e), f"{e} does not say {says!r}"
        return
    raise AssertionError(f"not refused (expected {says!r})")


for client, module in [(http, httpclient), (grpc, grpcclient)]:
    name = module.__name__
    # The server says it implements the extension before anything calls it.
    if module is httpclient:
        extensions = client.get_server_metadata()["extensions"]
    else:
        extensions = client.get_server_metadata(as_json=True)["extensions"]
    assert "model_repository" in extensions, extensions
    shutil.rmtree(repository / MODEL, ignore_errors=True)
    client.load_model(MODEL, headers=admin, config=json.dumps({"version_policy": {"latest": {"num_versions": 1}}}))
    assert index(client) == {"1.0.0": "READY"}, index(client)
    assert answered_by(client, module) == "1.0.0"

    # A retrained version appears in the repository (a volume update, a copy): load swaps it in.
    shutil.copytree(root / "tests/versions/breast-cancer/1.1.0", repository / MODEL / "1.1.0")
    assert index(client)["1.1.0"] == "UNAVAILABLE"
    client.load_model(MODEL, headers=admin)
    assert index(client) == {"1.0.0": "UNAVAILABLE", "1.1.0": "READY"}, index(client)
    assert answered_by(client, module) == "1.1.0"

    # Both side by side, the old one the default: the canary is asked for by version.
    both = json.dumps({"version_policy": {"all": {}}, "default_version": "1.0.0"})
    client.load_model(MODEL, headers=admin, config=both)
    assert index(client) == {"1.0.0": "READY", "1.1.0": "READY"}, index(client)
    assert answered_by(client, module) == "1.0.0"
    assert answered_by(client, module, "1") == "1.1.0"  # a major names its newest

    # Refusals change nothing.
    refused(lambda: client.load_model(MODEL), "API key")
    refused(lambda: client.load_model(MODEL, headers={"authorization": "Bearer not-the-admin-key-000"}), "not valid")
    refused(lambda: client.load_model("no-such-model", headers=admin), "no model named 'no-such-model'")
    refused(
        lambda: client.load_model(MODEL, headers=admin, config=json.dumps({"max_batch_size": 2})),
        "cannot be changed at run time",
    )
    assert answered_by(client, module) == "1.0.0"

    # Unload: the model is not ready, inference on it is refused; load brings it back.
    client.unload_model(MODEL, headers=admin)
    assert not client.is_model_ready(MODEL)
    refused(lambda: answered_by(client, module), "no version loaded")
    assert client.is_server_ready()
    client.load_model(MODEL, headers=admin)
    assert client.is_model_ready(MODEL)
    assert answered_by(client, module) == "1.0.0"
    print(f"{name}: index, load (new version, config override), unload, reload, refusals: ok")

shutil.rmtree(repository / MODEL, ignore_errors=True)
