"""Train the iris model the CI adds to an image, and write model.onnx and examples.json here.

Not a bundled model: `.ci/images.sh` builds the CPU image with `MODEL_REPOSITORY=tests/models`
and asks this model for predictions, proving a model dropped into a repository reaches the
image. It is shaped unlike the bundled ones on purpose: two inputs (`sepal`, `petal`, each
[-1, 2] in cm) joined by a Concat, and two outputs (`probabilities` over three labelled species,
and the raw `logits`).

Data: scikit-learn's bundled copy of Fisher's iris (150 flowers, 4 features): nothing is
downloaded. A seeded 80/20 split; an MLP with 8 ReLU units, standardisation folded in.

    python3 tests/models/iris/train.py       # scikit-learn 1.9.1, onnx 1.23.2, onnxruntime
    python3 tests/models/iris/train.py --seed 11 --out DIR   # a retrained graph elsewhere

Its weights version 1.1.0 (`1.1.0/`: seed 11, made by `weights-version`) goes into the image
beside the compiled graph and is what the image serves; `.ci/images.sh` checks its answers.
"""

import argparse
import json
import pathlib

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=7, help="the split's and the MLP's seed")
parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent)
args = parser.parse_args()
HERE = args.out
HERE.mkdir(parents=True, exist_ok=True)
SEED = args.seed

data = load_iris()
x_train, x_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.2, random_state=SEED, stratify=data.target
)
scaler = StandardScaler().fit(x_train)
mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=4000, random_state=SEED)
mlp.fit(scaler.transform(x_train), y_train)
accuracy = mlp.score(scaler.transform(x_test), y_test)

w1, w2 = mlp.coefs_
b1, b2 = mlp.intercepts_
w1f = w1 / scaler.scale_[:, None]
b1f = b1 - (scaler.mean_ / scaler.scale_) @ w1

f32 = lambda a, name: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)  # noqa: E731
graph = helper.make_graph(
    [
        helper.make_node("Concat", ["sepal", "petal"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "w1", "b1"], ["hidden_in"]),
        helper.make_node("Relu", ["hidden_in"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ],
    "iris",
    [
        helper.make_tensor_value_info("sepal", TensorProto.FLOAT, ["batch", 2]),
        helper.make_tensor_value_info("petal", TensorProto.FLOAT, ["batch", 2]),
    ],
    [
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
    ],
    initializer=[f32(w1f, "w1"), f32(b1f, "b1"), f32(w2, "w2"), f32(b2, "b2")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
model.producer_name = "ember-serve tests/models/iris/train.py"
onnx.checker.check_model(model)
onnx.save(model, HERE / "model.onnx")

session = onnxruntime.InferenceSession(str(HERE / "model.onnx"))
x32 = x_test.astype(np.float32)
probs, logits = session.run(None, {"sepal": x32[:, :2], "petal": x32[:, 2:]})
onnx_accuracy = float((probs.argmax(1) == y_test).mean())
assert abs(onnx_accuracy - accuracy) < 1e-9, (onnx_accuracy, accuracy)
(HERE / "examples.json").write_text(
    json.dumps(
        {
            "source": "ONNX Runtime %s on the first 8 held-out rows" % onnxruntime.__version__,
            "inputs": {"sepal": x32[:8, :2].tolist(), "petal": x32[:8, 2:].tolist()},
            "outputs": {"probabilities": probs[:8].tolist(), "logits": logits[:8].tolist()},
        },
        indent=1,
    )
    + "\n"
)
print(f"held-out accuracy {accuracy:.4f} on {len(y_test)} flowers; wrote model.onnx, examples.json")
