"""Loading the model in the worker, in the background, with readiness as observable state.

The loader runs in a thread of the worker process (after gunicorn's fork, never in the
master), so ``/livez`` answers at once while TensorFlow imports and the SavedModel loads
and warms up; ``/readyz`` and ``/predict`` answer 503 until then. A load that fails is not
swallowed: it stays visible on ``/readyz`` and, under gunicorn, ends the worker with the
boot-error status so that the master stops instead of serving a model-less process.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .artifact import Artifact, Metadata
from .errors import ModelNotReady
from .metrics import ServiceMetrics
from .predictor import Predictor
from .settings import Settings

log = logging.getLogger("service.loader")


PredictorFactory = Callable[[], Predictor]


class ModelLoader:
    def __init__(
        self,
        path: Path,
        metadata: Metadata,
        settings: Settings,
        metrics: ServiceMetrics,
        on_failure: Callable[[BaseException], None] | None = None,
        load: PredictorFactory | None = None,
    ) -> None:
        """``load`` makes the predictor (default: the version at ``path`` on ECG_RUNTIME);
        tests hand in one already loaded, or one that waits, to hold the loading window open."""
        self.path, self.metadata, self.settings, self.metrics = path, metadata, settings, metrics
        self._on_failure = on_failure
        self._load_predictor = load or self._load_version
        self._ready = threading.Event()
        self._predictor: Predictor | None = None
        self.error: str | None = None
        self.load_seconds: float | None = None

    def start(self, background: bool = True) -> None:
        if background:
            threading.Thread(target=self._load, name="model-loader", daemon=True).start()
        else:
            self._load()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            predictor = self._load_predictor()
            predictor.warm_up()
            # TensorFlow leaves ~400k tracked objects behind, and one full garbage
            # collection of them stalls a request for ~0.2 s. Collect once now, then
            # exempt them all (gc.freeze): later collections scan only new objects.
            gc.collect()
            gc.freeze()
        except BaseException as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.critical("model load failed", extra={"error": self.error, "path": str(self.path)})
            if self._on_failure:
                self._on_failure(exc)
            return
        self.load_seconds = time.perf_counter() - started
        self._predictor = predictor
        self.metrics.model_load_duration.set(self.load_seconds)
        self.metrics.model_info.labels(
            self.metadata.model_name, str(self.metadata.version), f"{predictor.threshold:.6g}"
        ).set(1)
        self.metrics.workers_ready.set(1)
        self._ready.set()
        log.info(
            "model ready",
            extra={
                "model": self.metadata.model_name,
                "version": self.metadata.version,
                "load_seconds": round(self.load_seconds, 3),
            },
        )

    def _load_version(self) -> Predictor:
        # Intra-op threads sized so that all workers together use the machine's cores once,
        # not N times over.
        settings = self.settings
        artifact = Artifact(self.path, self.metadata)
        return Predictor.load(artifact, settings.runtime, settings.intra_op_threads(), settings.onednn())

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def predictor(self, wait_seconds: float = 0.0) -> Predictor:
        """The loaded predictor, waiting up to ``wait_seconds`` for a load in progress: a
        request that reaches a worker still warming up (just started, or respawned after a
        crash) is answered a moment later rather than refused."""
        if self._predictor is None and self.error is None and wait_seconds > 0:
            self._ready.wait(wait_seconds)
        if self._predictor is None:
            reason = "model failed to load; see the server log" if self.error else "model is loading"
            raise ModelNotReady(reason)
        return self._predictor
