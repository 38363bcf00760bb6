"""The peer: BentoML 1.4 serving the same SavedModel in its recommended setup.

The SavedModel version folder is imported into BentoML's model store
(``bentoml.models.create``, done by the harness: ``python -m
benchmarks.servers.bentoml_service import``), the service declares it with
``bentoml.models.BentoModel`` and loads it in ``__init__`` with ``tf.saved_model.load``,
one ``@bentoml.api`` takes the beats as a validated numpy array (the same JSON body as
ours: ``{"beats": [[...], ...]}``) and returns the same response fields as ours. Served
with ``bentoml serve benchmarks.servers.bentoml_service:EcgAutoencoder`` and 2 workers
(``ECG_BENTO_WORKERS``), no adaptive batching, everything else at BentoML's defaults.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from bentoml.validators import DType, Shape

MODEL_TAG = os.environ.get("ECG_BENTO_MODEL", "ecg-autoencoder:latest")


@bentoml.service(name="ecg_autoencoder", workers=int(os.environ.get("ECG_BENTO_WORKERS", "2")))
class EcgAutoencoder:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        import tensorflow as tf

        path = self.model_ref.path
        self.meta = json.loads(Path(path, "metadata.json").read_text())
        self.fn = tf.saved_model.load(path).signatures[self.meta["signature_name"]]
        self.low = np.float32(self.meta["scaler"]["data_min"])
        self.high = np.float32(self.meta["scaler"]["data_max"])
        self.threshold = float(self.meta["threshold"]["value"])
        self.predict(np.full((2, 140), (self.low + self.high) / 2, dtype=np.float32))  # warm up

    @bentoml.api
    def predict(self, beats: Annotated[np.ndarray, Shape((-1, 140)), DType("float32")]) -> dict:
        out = self.fn(beats=beats)
        mse = out["mse"].numpy()
        point_errors = out["point_errors"].numpy()
        out_of_range = np.any((beats < self.low) | (beats > self.high), axis=1)
        return {
            "model_name": self.meta["model_name"],
            "model_version": self.meta["version"],
            "threshold": self.threshold,
            "predictions": [
                {
                    "mse": float(mse[i]),
                    "is_anomaly": bool(mse[i] > self.threshold),
                    "point_errors": point_errors[i].tolist(),
                    "out_of_range": bool(out_of_range[i]),
                }
                for i in range(len(mse))
            ],
        }

    @bentoml.api
    def worker(self) -> dict:
        """The answering process (the harness waits until every worker has answered)."""
        return {"pid": os.getpid()}


def import_model(saved_model_path: str) -> str:
    """Copy one SavedModel version folder into the BentoML model store (``BENTOML_HOME``)."""
    name = MODEL_TAG.split(":")[0]
    try:
        for old in bentoml.models.list(name):
            bentoml.models.delete(old.tag)
    except bentoml.exceptions.NotFound:
        pass
    with bentoml.models.create(name, metadata={"source": saved_model_path}) as model:
        shutil.copytree(saved_model_path, model.path, dirs_exist_ok=True)
    return str(model.tag)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "import":
        print(import_model(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m benchmarks.servers.bentoml_service import <saved-model-dir>")
