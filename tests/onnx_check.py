"""Runs a generator exported by `pggan export --onnx` in onnxruntime and compares its images with
pggan's own float output for the same latents (`pggan generate --format npy`).

Usage: onnx_check.py MODEL.onnx LATENTS.npy IMAGES.npy
Prints one JSON object; tests/export.rs asserts on it (the tolerance is stated there).
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, latents_path, images_path = sys.argv[1:4]

model = onnx.load(model_path)
# The checker with shape inference: a valid model of standard operators, not only one that
# onnxruntime happens to accept.
onnx.checker.check_model(model, full_check=True)

session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
z = np.load(latents_path)
expected = np.load(images_path)
(got,) = session.run(["images"], {"latents": z})
# The batch is free: the first latent alone gives the first image.
(alone,) = session.run(["images"], {"latents": z[:1]})

scale = float(np.abs(expected).max())
print(
    json.dumps(
        {
            "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
            "ops": sorted({n.op_type for n in model.graph.node}),
            "input": [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim],
            "shape": list(got.shape),
            "expected_shape": list(expected.shape),
            "max_abs": scale,
            "error": float(np.abs(got - expected).max()) / scale,
            "error_alone": float(np.abs(alone[0] - expected[0]).max()) / scale,
            "metadata": {p.key: p.value for p in model.metadata_props},
        }
    )
)
