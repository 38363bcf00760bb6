"""Shared fixtures: a tiny real model trained once per session, real ECG5000 beats, and a
real gunicorn server on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
import requests

from benchmarks.common import free_port

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from service.artifact import BUNDLED_MODEL_DIR as BUNDLED_MODELS
from service.artifact import REPO_ROOT as REPO

BUNDLED_NAME = "ecg-autoencoder"
TINY: dict[str, Any] = {
    "hidden_layers": [32],
    "latent_size": 4,
    "epochs": 4,
    "batch_size": 128,
    "early_stopping_patience": 0,
    "verbose": 0,
    "seed": 7,
}


@pytest.fixture(scope="session")
def pool():
    from training.data import DATA_DIR, DEFAULT_FILES, load_pool

    return load_pool([DATA_DIR / f for f in DEFAULT_FILES])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real training run of a tiny network, exported as version 1 of ``tiny``."""
    from training.config import TrainingConfig
    from training.pipeline import run

    out = tmp_path_factory.mktemp("models")
    return run(TrainingConfig(model_name="tiny", output_dir=out, **TINY))


@pytest.fixture(scope="session")
def tiny_settings(tiny_run):
    from service.settings import Settings

    return Settings(model_dir=tiny_run.path.parent.parent, model_name="tiny")


@pytest.fixture(scope="session")
def bundled_metadata():
    from service.artifact import read_metadata, resolve_version

    return read_metadata(resolve_version(BUNDLED_MODELS, BUNDLED_NAME, None))


@pytest.fixture(scope="session")
def tiny_predictor(tiny_run):
    """The tiny model loaded once: loading TensorFlow is the slow part of an app."""
    from service.artifact import open_artifact
    from service.predictor import Predictor

    return Predictor.load(open_artifact(tiny_run.path.parent.parent, "tiny"))


@pytest.fixture()
def make_app(tiny_settings, tiny_predictor):
    """Builds a fresh app on the tiny model, with settings changed as asked, its model
    loaded and warm (the session's predictor handed to the factory)."""
    from service.app import create_app

    def make(**changes):
        settings = tiny_settings.model_copy(update=changes)
        return create_app(settings, load_in_background=False, load_predictor=lambda: tiny_predictor)

    return make


@pytest.fixture()
def app(make_app):
    """A fresh app per test: no test sees what another did to its metrics."""
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path
    multiproc_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def wait_ready(self, timeout: float = 120.0, workers: int = 2) -> None:
        """Ready when /metrics reports every worker's model loaded and warmed. A slow
        answer (a machine busy loading TensorFlow) is waited for, not counted as a no."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn exited:\n{self.log()[-3000:]}"
            try:
                text = requests.get(f"{self.url}/metrics", timeout=max(1.0, deadline - time.monotonic())).text
                if f"ecg_worker_ready {float(workers)}" in text:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready:\n{self.log()[-3000:]}")

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            assert time.monotonic() < deadline, f"never logged {text!r} x{count}:\n{self.log()[-3000:]}"
            assert self.process.poll() is None, f"gunicorn exited:\n{self.log()[-3000:]}"
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        return [int(p) for p in subprocess.check_output(["pgrep", "-P", str(self.process.pid)]).split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def bundled_copy(models: Path) -> Path:
    """A model folder of its own holding the bundled version 1, for tests that publish."""
    v1 = models / BUNDLED_NAME / "1"
    shutil.copytree(BUNDLED_MODELS / BUNDLED_NAME / "1", v1)
    return v1


def publish_version(models: Path, version: int, metadata: str | None = None) -> Path:
    """Version ``version`` as a copy of version 1, published atomically as training does
    (``metadata``: the text of its metadata.json instead of version 1's, renumbered)."""
    v1 = models / BUNDLED_NAME / "1"
    staging = models / BUNDLED_NAME / f".staging-{version}"
    shutil.copytree(v1, staging)
    if metadata is None:
        metadata = json.dumps({**json.loads((v1 / "metadata.json").read_text()), "version": version})
    (staging / "metadata.json").write_text(metadata)
    return staging.rename(models / BUNDLED_NAME / str(version))


def start_gunicorn(tmp: Path, model_dir: Path, model_name: str, *, workers: int = 2, **env: str) -> Server:
    """The server as the README starts it (``python -m service -c gunicorn.conf.py``). No
    shutdown delay unless a test asks for one: nothing balances load in front of it."""
    port = free_port()
    multiproc = tmp / "multiproc"
    log_path = tmp / "gunicorn.log"
    environ = {
        **os.environ,
        "ECG_BIND": f"127.0.0.1:{port}",
        "ECG_WORKERS": str(workers),
        "ECG_MODEL_DIR": str(model_dir),
        "ECG_MODEL_NAME": model_name,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "ECG_SHUTDOWN_DELAY_SECONDS": "0",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "-c", str(REPO / "gunicorn.conf.py")],
        cwd=REPO,
        env=environ,
        stdout=open(log_path, "wb"),  # noqa: SIM115  (owned by the process)
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of its own, as under a supervisor
    )
    return Server(f"http://127.0.0.1:{port}", process, log_path, multiproc)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """A real gunicorn with 2 workers serving the bundled model."""
    srv = start_gunicorn(tmp_path_factory.mktemp("server"), BUNDLED_MODELS, BUNDLED_NAME)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def busy_core() -> Iterator[None]:
    """One core kept at 100% by another process for the duration of a test."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def beats_of(pool, indices, cls: int | None = None) -> np.ndarray:
    idx = np.asarray(indices)
    if cls is not None:
        idx = idx[pool.classes[idx] == cls]
    return pool.beats[idx]


def missing(what: str, how: str) -> NoReturn:
    """A test's tool is absent. CI installs every tool (``make tools``, the venv's extras),
    so there it fails; on a developer machine it skips, saying what to install."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed ({how}); .ci/run should have installed it")
    pytest.skip(f"{what} is not installed ({how})")


def require_tool(name: str, how: str = "make tools installs it") -> str:
    """The path of a command-line tool, from PATH or beside this interpreter (a venv's bin)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        missing(name, how)
    return path
