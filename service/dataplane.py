"""What both APIs do once a request is decoded: score a batch, answer readiness, check
that a path names the served model. Plain Python and numpy, no Flask: the routes in
``service/api.py`` and ``service/v2_api.py`` translate HTTP to these calls and back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .artifact import Metadata
from .errors import Detail, ModelNotFound
from .lifecycle import ServerState
from .loader import ModelLoader
from .metrics import ServiceMetrics
from .predictor import Scores
from .settings import Settings


@dataclass(frozen=True)
class DataPlane:
    """One app's model and its bookkeeping, stored in ``app.extensions["ecg"]``."""

    settings: Settings
    metadata: Metadata
    loader: ModelLoader
    metrics: ServiceMetrics
    server: ServerState | None = None  # the gunicorn server's shared state (service/lifecycle.py)

    def shutting_down(self) -> bool:
        return self.server is not None and self.server.shutting_down()

    def ready(self) -> bool:
        """Ready for traffic: the model is loaded and warm, and the server is not shutting
        down (from SIGTERM on, readiness is false while requests are still served)."""
        return self.loader.ready and not self.shutting_down()

    def score(self, beats: np.ndarray, threshold: float | None) -> Scores:
        """One batch through the predictor, counted in the metrics; both APIs score here.
        A request that reaches a worker still warming up waits up to
        ``ECG_READY_WAIT_SECONDS`` for the model, then gets a 503."""
        predictor = self.loader.predictor(wait_seconds=self.settings.ready_wait_seconds)
        scores = predictor.predict(beats, threshold)
        self.metrics.observe_scores(
            scores.mse, int(np.count_nonzero(scores.is_anomaly)), int(np.count_nonzero(scores.out_of_range))
        )
        return scores

    def served_model(self, name: str, version: str | None = None) -> Metadata:
        """The metadata of the model a path names, or a 404 naming what is served instead."""
        meta = self.metadata
        if name != meta.model_name:
            raise ModelNotFound(
                f"this server serves model {meta.model_name!r}, not {name!r}",
                [Detail("path.name", f"expected {meta.model_name!r}")],
            )
        if version is not None and version != str(meta.version):
            raise ModelNotFound(
                f"version {version!r} of {name!r} is not served; this server serves version {meta.version}",
                [Detail("path.version", f"expected {meta.version}")],
            )
        return meta
