"""Write examples.json beside this file: ONNX Runtime's answers for the exported digits model.

model.onnx is not written here: it is the digits CNN of weights/digits-cnn.safetensors, traced
by burn-onnx's exporter (raw pixels in, probabilities out):

    cargo run -p ember-train --features flex --bin export-onnx   # writes weights/digits-onnx/model.onnx
    python3 weights/digits-onnx/examples.py                       # onnxruntime, numpy

train/tests/onnx_export.rs checks that the export of today's weights is this file, byte for byte,
and that its answers equal the hand-written model's on the held-out split.
"""

import gzip
import json
from pathlib import Path

import numpy as np
import onnxruntime

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "tests" / "data" / "digits.csv.gz"

with gzip.open(DATA, "rt") as f:
    rows = [[float(v) for v in line.split(",")[:64]] for line, _ in zip(f, range(8))]
images = np.array(rows, dtype=np.float32).reshape(-1, 8, 8)
session = onnxruntime.InferenceSession(str(HERE / "model.onnx"))
(probs,) = session.run(None, {"pixels": images})
(HERE / "examples.json").write_text(
    json.dumps(
        {
            "source": "ONNX Runtime %s on the first 8 rows of tests/data/digits.csv.gz"
            % onnxruntime.__version__,
            "inputs": {"pixels": images.tolist()},
            "outputs": {"probabilities": probs.tolist()},
        },
        indent=1,
    )
    + "\n"
)
print("wrote examples.json; labels", probs.argmax(1).tolist())
