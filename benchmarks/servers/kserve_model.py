"""The peer: the KServe Python model server 0.21 with a ``kserve.Model`` calling the same
SavedModel signature, over its V2 REST API (``/v2/models/ecg-autoencoder/infer``): JSON
tensors (``kserve``), or the binary tensor extension, which KServe's REST API supports, with
the same bodies as ours (``kserve_v2``).

With ``--workers 2`` KServe spawns its REST workers and pickles the registered models into
them; a watchdog kills a worker that does not answer its ping within 5 s, and the V2
``infer`` route answers 503 for a model that is not ready (it never loads one itself). So the
model is registered ready but unloaded in the parent, is pickled without TensorFlow, and
each worker, as it unpickles it, runs ``load()`` in a thread of its own: the worker answers
its pings meanwhile, reports the model not ready (503) until it is loaded, then serves it.
With one worker it loads before the server starts. Everything else at KServe's defaults.

``python -m benchmarks.servers.kserve_model --http_port P --workers N --model_dir DIR``; runs
in ``benchmarks/out/venvs/kserve`` (``benchmarks.peers``).
"""

from __future__ import annotations

import argparse
import os
import threading
import uuid

# installed only in the peer's own venv (benchmarks.peers), not in the project's
import kserve
from kserve import InferOutput, InferRequest, InferResponse

from benchmarks.servers.peer_model import OUTPUTS, EcgSignature, hold

MODEL_NAME = "ecg-autoencoder"
DATATYPES = {"mse": "FP32", "point_errors": "FP32", "is_anomaly": "BOOL", "out_of_range": "BOOL"}


class EcgModel(kserve.Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.model: EcgSignature | None = None
        self.ready = True  # registered as ready in the parent; each worker loads its own copy

    def __getstate__(self) -> dict:
        """Pickled into a spawned worker: no TensorFlow, not loaded (``load()`` runs there)."""
        state = self.__dict__.copy()
        state.update(model=None, ready=False)
        return state

    def __setstate__(self, state: dict) -> None:
        """In a spawned worker: load in the background, so that the worker answers the
        parent's pings (5 s) while TensorFlow loads."""
        self.__dict__.update(state)
        threading.Thread(target=self.load, name="load-model", daemon=True).start()

    def load(self) -> bool:
        self.model = EcgSignature(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        assert self.model is not None
        out = self.model(payload.inputs[0].as_numpy())
        outputs = [
            InferOutput(name=name, shape=list(out[name].shape), datatype=DATATYPES[name], data=out[name])
            for name in OUTPUTS
        ]
        params = payload.parameters or {}
        return InferResponse(  # KServe encodes each output as the request asked: JSON or binary
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=outputs,
            parameters={"pid": os.getpid()} if hold(params) else None,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help="the SavedModel version folder")
    args, _ = parser.parse_known_args()
    model = EcgModel(MODEL_NAME, args.model_dir)
    if args.workers <= 1:
        model.load()
    kserve.ModelServer(workers=args.workers, http_port=args.http_port).start([model])


if __name__ == "__main__":
    main()
