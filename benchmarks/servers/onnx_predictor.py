"""ONNX Runtime inside our own predictor path: what TensorFlow costs us.

:class:`OnnxScorer` has the interface of ``service.predictor.SignatureScorer`` (numpy in,
``SignatureOutputs`` out) over the same model converted with tf2onnx (the serving
signature, scaling and errors included). :func:`use_onnx` swaps it in for the
SavedModel's signature, so ``service.predictor.Predictor`` and everything around it —
validation, routes, metrics, logging — stay exactly ours.
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
        from service.predictor import SignatureOutputs

        out = dict(zip(self._names, self._session.run(None, {self._input: beats}), strict=True))
        return SignatureOutputs(
            reconstruction=out[OUTPUT_RECONSTRUCTION],
            point_errors=out[OUTPUT_POINT_ERRORS],
            mse=out[OUTPUT_MSE],
        )


def use_onnx(threads: int | None = None) -> None:
    """Make ``service.predictor.Predictor`` score through ONNX Runtime, and keep the model
    loader from importing TensorFlow only to set its thread pools."""
    import service.loader
    import service.predictor

    def scorer(path, signature_name="serving_default", *args, **kwargs):
        return OnnxScorer(path, signature_name, threads)

    # the swap is the point: ONNX Runtime inside our own path, everything else unchanged
    service.predictor.SignatureScorer = scorer  # type: ignore[misc, assignment]
    for name in ("_configure_tensorflow", "configure_tensorflow"):
        if hasattr(service.loader.ModelLoader, name):
            setattr(service.loader.ModelLoader, name, lambda self: None)
