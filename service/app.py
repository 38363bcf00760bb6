"""The application factory: reads like the server's table of contents."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from prometheus_client import CollectorRegistry

from . import api, errors, request_log
from .artifact import read_metadata, resolve_version
from .lifecycle import ServerState
from .loader import ModelLoader
from .metrics import ServiceMetrics
from .settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    load_in_background: bool = True,
    on_load_failure: Callable[[BaseException], None] | None = None,
    server: ServerState | None = None,
) -> Flask:
    """Build the app for one model version.

    The artifact's metadata is read and validated here (fast, no TensorFlow), so a wrong
    model directory, name or version fails at start-up; the SavedModel itself loads in a
    background thread unless ``load_in_background`` is False. ``server`` is the state
    shared with the gunicorn master (readiness turns false when it starts shutting down).
    """
    settings = settings or Settings()
    request_log.configure_logging(settings.log_level)
    path = resolve_version(settings.model_dir, settings.model_name, settings.model_version)
    metadata = read_metadata(path)

    app = Flask("service")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    metrics = ServiceMetrics(CollectorRegistry(), metadata.threshold.value)
    loader = ModelLoader(path, metadata, settings, metrics, on_failure=on_load_failure)
    app.extensions["ecg"] = api.ServiceState(settings, metadata, loader, metrics, server)

    errors.init_app(app)
    request_log.init_app(app, metrics)
    api.init_app(app)
    loader.start(background=load_in_background)
    return app
