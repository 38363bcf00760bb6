"""Our server, unchanged, with the signature run by ONNX Runtime instead of TensorFlow.

Run as ``python -m service -c gunicorn.conf.py benchmarks.servers.onnx_wsgi:app``; each worker
uses ``ECG_TF_INTRA_OP_THREADS`` or CPUs / workers ONNX Runtime threads, as ours does
for TensorFlow. The ONNX scorer goes in through ``create_app``'s ``load_predictor``: the
Predictor, the routes, the metrics and the lifecycle are the server's own.
"""

from __future__ import annotations

import os

from benchmarks.servers.onnx_predictor import OnnxScorer
from service.app import create_app
from service.artifact import open_artifact
from service.lifecycle import this_server
from service.predictor import Predictor
from service.settings import Settings

WORKER_BOOT_ERROR = 3  # as service/wsgi.py (importing it would build the default app)


def _exit_worker(_: BaseException) -> None:
    os._exit(WORKER_BOOT_ERROR)


settings = Settings()
server = this_server()
_version = server.model_version if server and server.model_version else settings.model_version
_artifact = open_artifact(settings.model_dir, settings.model_name, _version)


def _load() -> Predictor:
    scorer = OnnxScorer(_artifact.path, _artifact.metadata.signature_name, settings.intra_op_threads())
    return Predictor(_artifact.metadata, scorer)


app = create_app(settings, on_load_failure=_exit_worker, server=server, load_predictor=_load)

__all__ = ["app"]
