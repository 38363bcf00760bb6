"""Settings come from ECG_* environment variables and refuse combinations that cannot work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ECG_MAX_BEATS", "7")
    monkeypatch.setenv("ECG_REQUEST_TIMEOUT_SECONDS", "2.5")
    settings = Settings()
    assert settings.max_beats == 7 and settings.request_timeout_seconds == 2.5


@pytest.mark.parametrize(
    ("threads", "onednn", "expected"),
    [("1", None, False), ("2", None, True), ("1", "true", True), ("4", "false", False)],
)
def test_onednn_runs_only_where_ops_get_several_threads_unless_set(monkeypatch, threads, onednn, expected):
    monkeypatch.setenv("ECG_TF_INTRA_OP_THREADS", threads)
    if onednn is not None:
        monkeypatch.setenv("ECG_TF_ONEDNN", onednn)
    assert Settings().onednn() is expected


def test_a_request_deadline_past_the_worker_timeout_is_refused(monkeypatch):
    """gunicorn kills a worker busy for ECG_TIMEOUT_SECONDS: a slow client must be dropped first."""
    monkeypatch.setenv("ECG_TIMEOUT_SECONDS", "10")
    monkeypatch.setenv("ECG_REQUEST_TIMEOUT_SECONDS", "10")
    problem = r"ECG_REQUEST_TIMEOUT_SECONDS \(10\) must be under ECG_TIMEOUT_SECONDS"
    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_the_gunicorn_master_imports_no_model_runtime_nor_prometheus_client():
    """What gunicorn.conf.py imports runs in the master before the fork. TensorFlow there
    deadlocks the workers; prometheus-client there fixes its mode before
    PROMETHEUS_MULTIPROC_DIR is set, and then each worker counts only for itself."""
    import subprocess
    import sys

    from service.artifact import REPO_ROOT

    check = (
        "import runpy, sys; runpy.run_path('gunicorn.conf.py');"
        "print(sorted(m for m in ('tensorflow', 'prometheus_client', 'ai_edge_litert', 'onnxruntime')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
