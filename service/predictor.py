"""Scoring: numpy in, numpy out, through a version's serving signature on any runtime.

One signature call per batch does the scaling, the reconstruction and the errors inside
the graph, so the server scores exactly as the training job evaluated (the training job
scores its splits through the same signature). The runtime (``service/runtimes.py``)
only runs that call; the threshold, the out-of-range flags and everything after them are
this one code path whichever runtime it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .artifact import INPUT_LENGTH, Artifact, Metadata
from .runtimes import Scorer, open_scorer


@dataclass(frozen=True)
class Scores:
    mse: np.ndarray  # (n,) float32
    is_anomaly: np.ndarray  # (n,) bool
    point_errors: np.ndarray  # (n, 140) float32
    out_of_range: np.ndarray  # (n,) bool
    reconstruction: np.ndarray  # (n, 140) float32, raw units
    threshold: float


class Predictor:
    """A model version ready to score: its signature on some runtime (``scorer``), scaler
    bounds and threshold."""

    def __init__(self, metadata: Metadata, scorer: Scorer) -> None:
        self.metadata = metadata
        self.threshold = metadata.threshold.value
        self._low = np.float32(metadata.scaler.data_min)
        self._high = np.float32(metadata.scaler.data_max)
        self._scorer = scorer

    @classmethod
    def load(
        cls, artifact: Artifact, runtime: str = "tensorflow", intra_op_threads: int = 0, onednn: bool = False
    ) -> Predictor:
        return cls(artifact.metadata, open_scorer(artifact, runtime, intra_op_threads, onednn))

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
        out_of_range = np.any((beats < self._low) | (beats > self._high), axis=1)
        return Scores(
            mse=out.mse,
            is_anomaly=out.mse > limit,
            point_errors=out.point_errors,
            out_of_range=out_of_range,
            reconstruction=out.reconstruction,
            threshold=float(limit),
        )
