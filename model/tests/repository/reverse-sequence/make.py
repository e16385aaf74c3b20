"""Write model.onnx: a graph whose one operator (ReverseSequence) burn-onnx 0.22 cannot import,
for the test that the build names the model directory and the operator.
python3 make.py (onnx 1.23.2)."""

import onnx
from onnx import TensorProto, helper, numpy_helper
import numpy as np

graph = helper.make_graph(
    [helper.make_node("ReverseSequence", ["x", "lengths"], ["y"], batch_axis=0, time_axis=1)],
    "reverse_sequence",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    initializer=[numpy_helper.from_array(np.array([4], dtype=np.int64), "lengths")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
onnx.checker.check_model(model)
onnx.save(model, "model.onnx")
