"""The peer: Seldon MLServer 1.7 with a custom runtime calling the same SavedModel signature.

Its recommended setup for a custom runtime: an ``MLModel`` subclass whose ``load()`` loads
the model (called in each parallel inference worker), a ``settings.json`` for the server
(ports, ``parallel_workers``) and a ``model-settings.json`` naming the model, the runtime's
import path and the model's ``uri``, started with ``mlserver start <folder>``; requests over
its V2 REST API (``/v2/models/ecg-autoencoder/infer``, JSON tensors: MLServer's REST API has
no binary tensor extension). Everything else at MLServer's defaults (gzip on, which the load
generator does not ask for; adaptive batching off).

``python -m benchmarks.servers.mlserver_runtime --port P --workers N --model DIR`` writes the
two files into a scratch folder and execs ``mlserver start`` on it. Runs in
``benchmarks/out/venvs/mlserver`` (``benchmarks.peers``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

# installed only in the peer's own venv (benchmarks.peers), not in the project's
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, Parameters

from benchmarks.servers.peer_model import OUTPUTS, EcgSignature, hold

MODEL_NAME = "ecg-autoencoder"


class EcgRuntime(MLModel):
    async def load(self) -> bool:
        uri = self._settings.parameters.uri if self._settings.parameters else None
        self._model = EcgSignature(str(uri))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        params = payload.parameters.model_dump() if payload.parameters else {}
        beats = NumpyCodec.decode_input(payload.inputs[0])
        out = self._model(beats)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name, out[name]) for name in OUTPUTS],
            parameters=Parameters(pid=os.getpid()) if hold(params) else None,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", required=True, help="the SavedModel version folder")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlserver-", dir=os.environ.get("ECG_BENCH_TMP")))
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": args.port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        "metrics_dir": str(folder / "metrics"),
        "parallel_workers": args.workers,
    }
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "benchmarks.servers.mlserver_runtime.EcgRuntime",
        "parameters": {"uri": str(Path(args.model).resolve()), "version": Path(args.model).name},
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=1))
    (folder / MODEL_NAME).mkdir()  # the model repository: a folder per model
    (folder / MODEL_NAME / "model-settings.json").write_text(json.dumps(model_settings, indent=1))
    mlserver = shutil.which("mlserver", path=str(Path(sys.executable).parent)) or "mlserver"
    os.execv(mlserver, [mlserver, "start", str(folder)])


if __name__ == "__main__":
    main()
