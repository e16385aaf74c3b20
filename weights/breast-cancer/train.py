"""Train the breast-cancer classifier and write model.onnx and examples.json beside this file.

Data: scikit-learn's bundled copy of the Breast Cancer Wisconsin (Diagnostic) data set (569
tumours, 30 features; UCI, CC BY 4.0): nothing is downloaded. A seeded 80/20 split; an MLP with
16 ReLU units. The standardisation is folded into the first layer, so the graph takes the raw
features. Plain ONNX operators only (Gemm, Relu, Softmax): burn-onnx imports these; the
ai.onnx.ml operators skl2onnx would emit (ZipMap, LinearClassifier) it cannot.

    python3 weights/breast-cancer/train.py      # scikit-learn 1.9.1, onnx 1.23.2, onnxruntime
    python3 weights/breast-cancer/train.py --seed 7 --out DIR   # a retrained graph elsewhere

Another seed gives other weights for the same graph: what `weights-version` turns into a weights
version the server loads without a rebuild (tests/versions/).
"""

import argparse
import json
import pathlib

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=42, help="the split's and the MLP's seed")
parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent)
args = parser.parse_args()
HERE = args.out
HERE.mkdir(parents=True, exist_ok=True)
SEED = args.seed

data = load_breast_cancer()
x_train, x_test, y_train, y_test = train_test_split(
    data.data, data.target, test_size=0.2, random_state=SEED, stratify=data.target
)
scaler = StandardScaler().fit(x_train)
mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=SEED)
mlp.fit(scaler.transform(x_train), y_train)
accuracy = mlp.score(scaler.transform(x_test), y_test)

# Fold (x - mean) / scale into the first layer.
w1, w2 = mlp.coefs_
b1, b2 = mlp.intercepts_
w1f = w1 / scaler.scale_[:, None]
b1f = b1 - (scaler.mean_ / scaler.scale_) @ w1
# Binary MLPClassifier has one logistic output z = P(class 1); softmax over [0, z] is the same
# distribution, so the graph ends in the usual two-class softmax.
w2f = np.concatenate([np.zeros_like(w2), w2], axis=1)
b2f = np.concatenate([np.zeros_like(b2), b2])

f32 = lambda a, name: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)  # noqa: E731
graph = helper.make_graph(
    [
        helper.make_node("Gemm", ["features", "w1", "b1"], ["hidden_in"]),
        helper.make_node("Relu", ["hidden_in"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ],
    "breast_cancer",
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 30])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
    initializer=[f32(w1f, "w1"), f32(b1f, "b1"), f32(w2f, "w2"), f32(b2f, "b2")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
model.producer_name = "ember-serve weights/breast-cancer/train.py"
onnx.checker.check_model(model)
onnx.save(model, HERE / "model.onnx")

# Reference answers from ONNX Runtime on held-out rows: the import is checked against them.
session = onnxruntime.InferenceSession(str(HERE / "model.onnx"))
rows = x_test[:8].astype(np.float32)
(probs,) = session.run(None, {"features": rows})
onnx_accuracy = float((session.run(None, {"features": x_test.astype(np.float32)})[0].argmax(1) == y_test).mean())
assert abs(onnx_accuracy - accuracy) < 1e-9, (onnx_accuracy, accuracy)
(HERE / "examples.json").write_text(
    json.dumps(
        {
            "source": "ONNX Runtime %s on the first 8 held-out rows" % onnxruntime.__version__,
            "inputs": {"features": rows.tolist()},
            "outputs": {"probabilities": probs.tolist()},
        },
        indent=1,
    )
    + "\n"
)
print(f"held-out accuracy {accuracy:.4f} on {len(y_test)} tumours; wrote model.onnx, examples.json")
