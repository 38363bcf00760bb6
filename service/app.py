"""The application factory: reads like the server's table of contents."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from prometheus_client import CollectorRegistry

from . import access, api, errors, explorer, request_log, response_headers, v2_api
from .api_keys import KeysFile
from .artifact import open_artifact
from .dataplane import DataPlane
from .lifecycle import ServerState
from .loader import ModelLoader, PredictorFactory
from .metrics import ServiceMetrics
from .routing import EXTENSION
from .settings import Settings
from .test_split import TestSplitCache


def create_app(
    settings: Settings | None = None,
    *,
    load_in_background: bool = True,
    on_load_failure: Callable[[BaseException], None] | None = None,
    server: ServerState | None = None,
    load_predictor: PredictorFactory | None = None,
) -> Flask:
    """Build the app for one model version.

    The artifact's metadata is read and validated here (fast, no TensorFlow), so a wrong
    model directory, name or version fails at start-up; the SavedModel itself loads in a
    background thread unless ``load_in_background`` is False. ``server`` is the state
    shared with the gunicorn master: readiness turns false when it starts shutting down,
    and the version it chose (at start, or at the last reload) is the one loaded.
    ``load_predictor`` replaces loading the SavedModel (tests pass one already loaded).
    """
    settings = settings or Settings()
    log_handler = request_log.configure_logging(settings.log_level)
    version = server.model_version if server and server.model_version else settings.model_version
    artifact = open_artifact(settings.model_dir, settings.model_name, version)
    path, metadata = artifact.path, artifact.metadata

    app = Flask("service", static_folder=None)  # the explorer serves its own files, with its headers
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    metrics = ServiceMetrics(CollectorRegistry(), metadata.threshold.value)
    loader = ModelLoader(path, metadata, settings, metrics, on_failure=on_load_failure, load=load_predictor)
    app.extensions[EXTENSION] = DataPlane(settings, metadata, loader, metrics, server)

    keys = None
    if settings.api_keys_file is not None:
        fallback = server.api_keys if server else None
        keys = KeysFile(settings.api_keys_file, settings.api_keys_check_seconds, metrics, fallback)

    errors.init_app(app)
    request_log.init_app(app, metrics, log_handler)  # first: times and logs what the access check refuses too
    access.init_app(app, settings, metrics, keys)
    response_headers.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(v2_api.bp)
    app.register_blueprint(explorer.bp)
    app.extensions[explorer.EXTENSION] = TestSplitCache()
    loader.start(background=load_in_background)
    if keys is not None:
        keys.watch()
    return app
