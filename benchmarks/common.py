"""Paths, beats and request bodies shared by the harness and the servers (no TensorFlow)."""

from __future__ import annotations

import gzip
import os
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
OUT = BENCH / "out"  # git-ignored: converted models, BentoML home, logs, raw JSON
DATA_FILE = REPO / "data" / "ECG5000_TEST.tsv.gz"
MODEL_DIR = REPO / "saved_models"
MODEL_NAME = "ecg-autoencoder"
PYTHON = sys.executable
BATCHES = (1, 32, 256)


def model_path(version: int | None = None) -> Path:
    from service.artifact import resolve_version

    return resolve_version(MODEL_DIR, MODEL_NAME, version)


def beat_rows(n: int) -> list[list[str]]:
    """The first ``n`` beats of ECG5000's test file, as the decimal strings in the file
    (so request bodies carry real-world number text, not re-printed floats)."""
    rows: list[list[str]] = []
    with gzip.open(DATA_FILE, "rt") as handle:
        for line in handle:
            fields = line.split()
            rows.append(fields[1:])
            if len(rows) == n:
                break
    if len(rows) < n:
        raise ValueError(f"{DATA_FILE} has only {len(rows)} beats")
    return rows


def predict_body(batch: int) -> bytes:
    rows = beat_rows(batch)
    return ('{"beats":[' + ",".join("[" + ",".join(r) + "]" for r in rows) + "]}").encode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_env(**extra: str) -> dict[str, str]:
    """Environment for every child: no TF chatter, no BentoML usage tracking (loopback only)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env["DO_NOT_TRACK"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env
