"""ONNX Runtime inside our own predictor path: what TensorFlow costs us.

:class:`OnnxScorer` has the interface of ``service.runtimes.SignatureScorer`` (numpy in,
``SignatureOutputs`` out) over the same model converted with tf2onnx (the serving
signature, scaling and errors included). ``service.predictor.Predictor(metadata,
OnnxScorer(...))`` scores through it, so everything around the signature call —
validation, routes, metrics, logging — stays exactly ours.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.common import OUT

ONNX_ROOT = OUT / "onnx"


def onnx_file(saved_model_path: Path) -> Path:
    """Where the converted copy of a model version lives (``benchmarks/out/onnx/<name>/<v>``)."""
    p = Path(saved_model_path)
    return ONNX_ROOT / p.parent.name / p.name / "model.onnx"


class OnnxScorer:
    def __init__(
        self, path: Path, signature_name: str = "serving_default", threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        from service.artifact import SIGNATURE_INPUT

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("ECG_ONNX_THREADS", "0")) or 0
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Spinning threads would burn the core the other worker needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        file = onnx_file(path) if Path(path).is_dir() else Path(path)
        self._session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self._input = SIGNATURE_INPUT
        self._names = [o.name for o in self._session.get_outputs()]

    def __call__(self, beats: np.ndarray):
        from service.artifact import OUTPUT_MSE, OUTPUT_POINT_ERRORS, OUTPUT_RECONSTRUCTION
        from service.runtimes import SignatureOutputs

        out = dict(zip(self._names, self._session.run(None, {self._input: beats}), strict=True))
        return SignatureOutputs(
            reconstruction=out[OUTPUT_RECONSTRUCTION],
            point_errors=out[OUTPUT_POINT_ERRORS],
            mse=out[OUTPUT_MSE],
        )
