"""The naive server: Flask + Keras ``model.predict`` per request, JSON through ``jsonify``.

The Keras model is rebuilt with ``training.model.build_autoencoder`` from the training
configuration recorded in the artifact's metadata.json, and its weights are copied, layer
by layer, from the SavedModel's variables (``encoder_0/kernel:0`` and so on). At start the
worker checks that its MSEs equal the serving signature's on real beats (within 1e-5), so
the naive server scores exactly the same model. Scaling, errors and the threshold are
computed in numpy around ``model.predict``, the way a first version of a server would.
Run under our ``gunicorn.conf.py`` (2 sync workers), the model loads at import (in each
worker after the fork; the conf never preloads).
"""

from __future__ import annotations

import os

import numpy as np
from flask import Flask, jsonify, request

from benchmarks.common import beat_rows, hold_for_probe, model_path
from service.artifact import read_metadata

_TRAINING_KEYS = ("hidden_layers", "latent_size", "activation", "regularizer", "regularization_rate")


def load_keras_model(path):
    """A ``keras.Model`` with the SavedModel's weights, and the SavedModel itself."""
    import tensorflow as tf

    from training.config import TrainingConfig
    from training.model import build_autoencoder

    meta = read_metadata(path)
    config = TrainingConfig(**{k: meta.training_config[k] for k in _TRAINING_KEYS})
    model = build_autoencoder(config)
    loaded = tf.saved_model.load(str(path))
    by_name = {v.name.split(":")[0]: v for v in loaded.variables}
    copied = 0
    for layer in model.layers:
        for weight in layer.weights:
            key = f"{layer.name}/{weight.name}"
            if key not in by_name:
                raise RuntimeError(f"the SavedModel has no variable {key}")
            weight.assign(by_name[key].numpy())
            copied += 1
    if copied != len(by_name):
        raise RuntimeError(f"copied {copied} of the SavedModel's {len(by_name)} variables")
    return model, loaded, meta


PATH = model_path(int(os.environ["ECG_MODEL_VERSION"]) if os.environ.get("ECG_MODEL_VERSION") else None)
MODEL, _LOADED, META = load_keras_model(PATH)
LOW = np.float32(META.scaler.data_min)
HIGH = np.float32(META.scaler.data_max)
SPAN = HIGH - LOW
THRESHOLD = META.threshold.value


def _score(beats: np.ndarray):
    scaled = (beats - LOW) / SPAN
    reconstruction = MODEL.predict(scaled, verbose=0)
    point_errors = (scaled - reconstruction) ** 2
    return point_errors.mean(axis=1), point_errors


def _self_check() -> None:
    beats = np.asarray(beat_rows(16), dtype=np.float32)
    mse, _ = _score(beats)
    expected = _LOADED.signatures["serving_default"](beats=beats)["mse"].numpy()
    if not np.allclose(mse, expected, rtol=1e-4, atol=1e-5):
        raise RuntimeError("the rebuilt Keras model does not reproduce the SavedModel's scores")


_self_check()
app = Flask("naive")


@app.post("/predict")
def predict():
    data = request.get_json()
    beats = np.array(data["beats"], dtype=np.float32)
    mse, point_errors = _score(beats)
    out_of_range = np.any((beats < LOW) | (beats > HIGH), axis=1)
    return jsonify(
        {
            "model_name": META.model_name,
            "model_version": META.version,
            "threshold": THRESHOLD,
            "predictions": [
                {
                    "mse": float(mse[i]),
                    "is_anomaly": bool(mse[i] > THRESHOLD),
                    "point_errors": point_errors[i].tolist(),
                    "out_of_range": bool(out_of_range[i]),
                }
                for i in range(len(mse))
            ],
        }
    )


@app.get("/readyz")
def readyz():
    hold_for_probe(request.args.get("hold"))
    return jsonify({"status": "ready", "pid": os.getpid()})
