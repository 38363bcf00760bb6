"""The model as the peers (MLServer, KServe) serve it: the SavedModel's serving signature,
called the canonical way, and the same four outputs as our ``/predict``.

Runs in a peer's own virtualenv (``benchmarks/out/venvs/<peer>``): numpy and TensorFlow
only, none of our serving code. The scaler bounds and threshold come from the version's
``metadata.json``, as BentoML's service reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

OUTPUTS = ("mse", "is_anomaly", "point_errors", "out_of_range")


class EcgSignature:
    def __init__(self, path: str) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self.meta = json.loads(Path(path, "metadata.json").read_text())
        self.fn = tf.saved_model.load(path).signatures[self.meta["signature_name"]]
        self.low = np.float32(self.meta["scaler"]["data_min"])
        self.high = np.float32(self.meta["scaler"]["data_max"])
        self.threshold = float(self.meta["threshold"]["value"])
        self(np.full((2, 140), (self.low + self.high) / 2, dtype=np.float32))  # warm up

    def __call__(self, beats: np.ndarray) -> dict[str, np.ndarray]:
        beats = np.asarray(beats, dtype=np.float32).reshape(-1, 140)
        out = self.fn(beats=beats)
        mse = out["mse"].numpy()
        return {
            "mse": mse,
            "is_anomaly": mse > self.threshold,
            "point_errors": out["point_errors"].numpy(),
            "out_of_range": np.any((beats < self.low) | (beats > self.high), axis=1),
        }


def hold(parameters: dict | None) -> bool:
    """A readiness probe's request (``"parameters": {"hold": s}``): keep this worker busy a
    moment so that probes sent at once reach different workers (benchmarks.procs)."""
    import time

    if not parameters or "hold" not in parameters:
        return False
    time.sleep(min(max(float(parameters["hold"]), 0.0), 1.0))
    return True
