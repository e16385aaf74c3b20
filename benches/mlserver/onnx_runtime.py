"""An MLServer runtime that serves one ONNX file through ONNX Runtime.

MLServer 1.7.1 ships no ONNX runtime of its own; this is the few lines a user of it would write
to serve the same model.onnx ember-serve compiles in, so benches/vs_mlserver.sh compares two
KServe V2 servers answering the same request with the same graph.
"""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        # One thread per session: the comparison runs on a small machine shared with the client.
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"]
        )
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {
            i.name: NumpyCodec.decode_input(i).astype(np.float32) for i in payload.inputs
        }
        results = self._session.run(self._outputs, feeds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name, value)
                for name, value in zip(self._outputs, results)
            ],
        )
