"""Scoring: numpy in, numpy out, through the SavedModel's serving signature.

One signature call per batch does the scaling, the reconstruction and the errors inside
the graph, so the server scores exactly as the training job evaluated (the training job
scores its splits through :class:`SignatureScorer` too). Never ``keras.Model.predict``:
it rebuilds a data pipeline on every call and costs milliseconds per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifact import (
    INPUT_LENGTH,
    OUTPUT_MSE,
    OUTPUT_POINT_ERRORS,
    OUTPUT_RECONSTRUCTION,
    SIGNATURE_INPUT,
    ArtifactError,
    Metadata,
)


@dataclass(frozen=True)
class SignatureOutputs:
    reconstruction: np.ndarray  # raw units, (n, 140)
    point_errors: np.ndarray  # squared error in scaled space, (n, 140)
    mse: np.ndarray  # mean of point_errors per beat, (n,)


class SignatureScorer:
    """The loaded SavedModel's serving signature as a numpy function."""

    def __init__(self, path: Path, signature_name: str) -> None:
        import tensorflow as tf  # imported here: the gunicorn master must never load TF

        self._tf = tf
        try:
            self._loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load the SavedModel in {path}: {exc}") from exc
        try:
            self._fn = self._loaded.signatures[signature_name]
        except KeyError:
            raise ArtifactError(f"{path} has no signature {signature_name!r}") from None

    def __call__(self, beats: np.ndarray) -> SignatureOutputs:
        out = self._fn(**{SIGNATURE_INPUT: self._tf.constant(beats, dtype=self._tf.float32)})
        return SignatureOutputs(
            reconstruction=out[OUTPUT_RECONSTRUCTION].numpy(),
            point_errors=out[OUTPUT_POINT_ERRORS].numpy(),
            mse=out[OUTPUT_MSE].numpy(),
        )


@dataclass(frozen=True)
class Scores:
    mse: np.ndarray  # (n,) float32
    is_anomaly: np.ndarray  # (n,) bool
    point_errors: np.ndarray  # (n, 140) float32
    out_of_range: np.ndarray  # (n,) bool
    reconstruction: np.ndarray  # (n, 140) float32, raw units
    threshold: float


class Predictor:
    """A model version ready to score: signature, scaler bounds and threshold."""

    def __init__(self, path: Path, metadata: Metadata) -> None:
        self.metadata = metadata
        self.threshold = metadata.threshold.value
        self._low = np.float32(metadata.scaler.data_min)
        self._high = np.float32(metadata.scaler.data_max)
        self._scorer = SignatureScorer(path, metadata.signature_name)

    def warm_up(self) -> None:
        """One real call, so that graph tracing and thread-pool start-up happen before the
        first request rather than during it."""
        span = self._high - self._low
        self.predict(np.full((2, INPUT_LENGTH), self._low + span / 2, dtype=np.float32))

    def predict(self, beats: np.ndarray, threshold: float | None = None) -> Scores:
        beats = np.asarray(beats, dtype=np.float32)
        if beats.ndim != 2 or beats.shape[1] != INPUT_LENGTH:
            raise ValueError(f"beats must have shape (n, {INPUT_LENGTH}), got {beats.shape}")
        limit = self.threshold if threshold is None else threshold
        out = self._scorer(beats)
        out_of_range = ((beats < self._low) | (beats > self._high)).any(axis=1)
        return Scores(
            mse=out.mse,
            is_anomaly=out.mse > limit,
            point_errors=out.point_errors,
            out_of_range=out_of_range,
            reconstruction=out.reconstruction,
            threshold=float(limit),
        )
