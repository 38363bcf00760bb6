"""Our server, unchanged, with the SavedModel's signature replaced by ONNX Runtime.

Run as ``python -m service -c gunicorn.conf.py benchmarks.servers.onnx_wsgi:app``; each worker
uses ``ECG_TF_INTRA_OP_THREADS`` or CPUs / workers ONNX Runtime threads, as ours does
for TensorFlow.
"""

from __future__ import annotations

from benchmarks.servers.onnx_predictor import use_onnx
from service.settings import Settings

use_onnx(threads=Settings().intra_op_threads())

from service.wsgi import app  # noqa: E402  (after the swap)

__all__ = ["app"]
