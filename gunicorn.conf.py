"""gunicorn configuration: ``python -m service -c gunicorn.conf.py`` (gunicorn's command
line with this server's master, ``service/arbiter.py``; all settings from ``ECG_*``).

The master never imports TensorFlow: a TF runtime initialised before ``fork`` deadlocks
the workers on their first inference. Each worker imports ``service.wsgi`` after the
fork, and its app loads and warms the model in the background (``/readyz`` says when).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from service.api_keys import KeysFileError, read_keys_file
from service.arbiter import Arbiter
from service.artifact import Artifact, ArtifactError, open_artifact, runtime_file
from service.settings import Settings
from service.worker import SyncWorker

try:
    settings = Settings()
except ValidationError as exc:
    sys.exit(f"error: invalid ECG_* setting:\n{exc}")

wsgi_app = "service.wsgi:app"
proc_name = "ecg-anomaly"  # process titles "gunicorn: master [ecg-anomaly]", "gunicorn: worker [...]"
bind = [settings.bind] if settings.metrics_bind is None else [settings.bind, settings.metrics_bind]
workers = settings.workers
# gunicorn's sync worker, with deadlines on stalled or trickling clients (service/worker.py)
worker_class = "service.worker.SyncWorker"
SyncWorker.client_timeout_seconds = settings.client_timeout_seconds
SyncWorker.request_timeout_seconds = settings.request_timeout_seconds
SyncWorker.linger_max_bytes = settings.linger_max_bytes
timeout = settings.timeout_seconds
graceful_timeout = settings.graceful_timeout_seconds
keepalive = settings.keepalive_seconds
preload_app = False  # never: see the module docstring
control_socket_disable = True
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
loglevel = settings.log_level
if settings.worker_tmp_dir is not None:
    worker_tmp_dir = str(settings.worker_tmp_dir)
elif os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files off a possibly slow or read-only disk

# Under gunicorn, every worker writes its metrics to files in this folder and a scrape
# aggregates them (prometheus-client multiprocess mode). It must be empty at start.
_multiproc = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"ecg-metrics-{os.getpid()}")
)
# TensorFlow's own C++ logs are noise on a server's stdout; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def servable(settings: Settings) -> Artifact:
    """The version to serve, with a checked copy for ``ECG_RUNTIME`` (no runtime imported)."""
    artifact = open_artifact(settings.model_dir, settings.model_name, settings.model_version)
    runtime_file(artifact, settings.runtime)
    if settings.runtime == "litert" and importlib.util.find_spec("ai_edge_litert") is None:
        raise ArtifactError("ECG_RUNTIME=litert needs ai-edge-litert: pip install 'ecg-anomaly[litert]'")
    return artifact


def on_starting(server) -> None:
    """Fail fast, before forking, when the model cannot be found or its metadata is bad,
    or when the server was started without its lifecycle (``gunicorn`` instead of
    ``python -m service``: no drain on SIGTERM, reloads that make requests wait). The
    version found is the one every worker loads until the next SIGHUP."""
    if not isinstance(server, Arbiter):
        server.log.error("start the server with `python -m service` (gunicorn's options), not `gunicorn`")
        sys.exit(1)
    try:
        artifact = servable(settings)
    except ArtifactError as exc:
        server.log.error("cannot serve: %s", exc)
        sys.exit(1)
    meta = artifact.metadata
    server.log.info(
        "serving %s version %s from %s on %s", meta.model_name, meta.version, artifact.path, settings.runtime
    )
    server.server_state.model_version = meta.version
    if settings.api_keys_file is not None:
        try:
            server.server_state.api_keys = keys = read_keys_file(settings.api_keys_file)
        except KeysFileError as exc:
            server.log.error("cannot serve: ECG_API_KEYS_FILE %s: %s", settings.api_keys_file, exc)
            sys.exit(1)
        server.log.info("API keys on: %d key(s) from %s", len(keys.digests), settings.api_keys_file)
    os.makedirs(_multiproc, exist_ok=True)
    for stale in Path(_multiproc).glob("*.db"):  # only our files: the folder may be shared
        stale.unlink()


def on_reload(server) -> None:
    """SIGHUP: new workers load the newest version (or ``ECG_MODEL_VERSION``), and the
    master rereads the keys file (kept as it was if it cannot be read). If its
    artifact is broken, they load the version being served instead, so that a bad publish
    does not stop a running server (at start there is nothing to fall back to:
    ``on_starting`` exits). A SavedModel that only fails inside TensorFlow is not caught
    here and stops the server as at start-up."""
    if settings.api_keys_file is not None:
        try:
            server.server_state.api_keys = read_keys_file(settings.api_keys_file)
        except KeysFileError as exc:
            server.log.error("reload keeps the API keys read before: %s", exc)
    try:
        artifact = servable(settings)
    except ArtifactError as exc:
        if settings.model_version is not None:
            return  # the operator asked for exactly this one: its workers fail as at start
        serving = server.server_state.model_version
        server.log.error("reload keeps version %s: the newest version cannot be served: %s", serving, exc)
        return
    meta = artifact.metadata
    server.server_state.model_version = meta.version
    server.log.info("reload: serving %s version %s from %s", meta.model_name, meta.version, artifact.path)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
