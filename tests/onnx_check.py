"""Runs a model exported by `pggan export` in onnxruntime on inputs and compares its outputs with
pggan's own for the same inputs (G: `pggan generate --format npy`; D: its GPU forward pass).

Usage: onnx_check.py MODEL.onnx INPUT.npy EXPECTED.npy [INPUT.npy EXPECTED.npy ...]
Prints one JSON object; tests/export.rs asserts on it (the tolerance is stated there).
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, pairs = sys.argv[1], sys.argv[2:]

model = onnx.load(model_path)
# The checker with shape inference: a valid model of standard operators, not only one that
# onnxruntime happens to accept.
onnx.checker.check_model(model, full_check=True)

session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
(input_name,) = [i.name for i in session.get_inputs()]
(output_name,) = [o.name for o in session.get_outputs()]
runs = []
for input_path, expected_path in zip(pairs[::2], pairs[1::2]):
    expected = np.load(expected_path)
    (got,) = session.run([output_name], {input_name: np.load(input_path)})
    scale = float(np.abs(expected).max())
    runs.append(
        {
            "shape": list(got.shape),
            "expected_shape": list(expected.shape),
            "max_abs": scale,
            "error": float(np.abs(got - expected).max()) / scale,
        }
    )


def dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


print(
    json.dumps(
        {
            "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
            "ops": {op: [n.op_type for n in model.graph.node].count(op) for op in {n.op_type for n in model.graph.node}},
            "input": [input_name, dims(model.graph.input[0])],
            "output": [output_name, dims(model.graph.output[0])],
            "metadata": {p.key: p.value for p in model.metadata_props},
            "runs": runs,
        }
    )
)
