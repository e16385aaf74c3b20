"""Train the diabetes-progression regressor and write model.onnx and examples.json beside this file.

Data: scikit-learn's bundled copy of the diabetes data set of Efron, Hastie, Johnstone and
Tibshirani (2004), 442 patients, 10 baseline features (already centred and scaled by
scikit-learn), target: a measure of disease progression one year later. Nothing is downloaded.
A seeded 80/20 split; an MLP with 32 ReLU units on a standardised target, the target's scaling
folded into the last layer, so the graph answers in the data set's own units. No labels: one
FP32 value per row. Plain ONNX operators only (Gemm, Relu).

    python3 weights/diabetes/train.py      # scikit-learn 1.9.1, onnx 1.23.2, onnxruntime
"""

import json
import pathlib

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_diabetes
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor

HERE = pathlib.Path(__file__).resolve().parent
SEED = 42

x, y = load_diabetes(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED)
y_mean, y_scale = y_train.mean(), y_train.std()
mlp = MLPRegressor(hidden_layer_sizes=(32,), alpha=1.0, max_iter=5000, random_state=SEED)
mlp.fit(x_train, (y_train - y_mean) / y_scale)
predicted = mlp.predict(x_test) * y_scale + y_mean
r2 = r2_score(y_test, predicted)

w1, w2 = mlp.coefs_
b1, b2 = mlp.intercepts_
f32 = lambda a, name: numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)  # noqa: E731
graph = helper.make_graph(
    [
        helper.make_node("Gemm", ["features", "w1", "b1"], ["hidden_in"]),
        helper.make_node("Relu", ["hidden_in"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["progression"]),
    ],
    "diabetes",
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 10])],
    [helper.make_tensor_value_info("progression", TensorProto.FLOAT, ["batch", 1])],
    initializer=[f32(w1, "w1"), f32(b1, "b1"), f32(w2 * y_scale, "w2"), f32(b2 * y_scale + y_mean, "b2")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
model.producer_name = "ember-serve weights/diabetes/train.py"
onnx.checker.check_model(model)
onnx.save(model, HERE / "model.onnx")

# Reference answers from ONNX Runtime on held-out rows: the import is checked against them.
session = onnxruntime.InferenceSession(str(HERE / "model.onnx"))
(all_rows,) = session.run(None, {"features": x_test.astype(np.float32)})
assert np.abs(all_rows[:, 0] - predicted).max() < 1e-2, "the folded graph differs from the MLP"
rows = x_test[:8].astype(np.float32)
(out,) = session.run(None, {"features": rows})
(HERE / "examples.json").write_text(
    json.dumps(
        {
            "source": "ONNX Runtime %s on the first 8 held-out rows" % onnxruntime.__version__,
            "inputs": {"features": rows.tolist()},
            "outputs": {"progression": out.tolist()},
        },
        indent=1,
    )
    + "\n"
)
print(f"held-out R² {r2:.4f} on {len(y_test)} patients; wrote model.onnx, examples.json")
