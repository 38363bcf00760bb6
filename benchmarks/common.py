"""Paths, beats and request bodies shared by the harness and the servers (no TensorFlow)."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from service.artifact import BUNDLED_MODEL_DIR as MODEL_DIR
from service.artifact import REPO_ROOT as REPO

BENCH = REPO / "benchmarks"
OUT = BENCH / "out"  # git-ignored: converted models, BentoML home, logs, raw JSON
DATA_FILE = REPO / "data" / "ECG5000_TEST.tsv.gz"
MODEL_NAME = "ecg-autoencoder"
PYTHON = sys.executable
BATCHES = (1, 32, 256)


def hold_for_probe(seconds: str | None) -> None:
    """Keep a readiness probe's worker busy a moment (``?hold=0.05``, at most 1 s), so that
    probes sent at once reach different workers (benchmarks.procs)."""
    with contextlib.suppress(ValueError):
        time.sleep(min(max(float(seconds or 0), 0.0), 1.0))


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


V2_HEADER = "Inference-Header-Content-Length"
V2_OUTPUTS = ("mse", "is_anomaly", "point_errors", "out_of_range")  # what /predict answers


def v2_binary_body(batch: int) -> tuple[bytes, dict[str, str]]:
    """The same beats for ``/v2/models/<name>/infer`` in the binary tensor extension: a JSON
    header, then float32 beats; the same four outputs as ``/predict``, as binary data."""
    import numpy as np

    raw = np.asarray(beat_rows(batch), dtype="<f4").tobytes()
    header = {
        "inputs": [
            {
                "name": "beats",
                "shape": [batch, 140],
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in V2_OUTPUTS],
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    return head + raw, {V2_HEADER: str(len(head))}


@dataclass(frozen=True)
class Body:
    """One request as the load generator sends it."""

    path: str
    data: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # written by the harness for hey and wrk


def v2_json_body(batch: int, parameters: dict | None = None) -> bytes:
    """The same beats for ``/v2/models/<name>/infer`` as JSON tensor data (the peers' V2 REST
    APIs): flat, row-major, the file's own decimal strings; the same four outputs asked for."""
    data = ",".join(x for row in beat_rows(batch) for x in row)
    outputs = ",".join(f'{{"name":"{n}"}}' for n in V2_OUTPUTS)
    extra = f',"parameters":{json.dumps(parameters)}' if parameters else ""
    return (
        f'{{"inputs":[{{"name":"beats","shape":[{batch},140],"datatype":"FP32","data":[{data}]}}],'
        f'"outputs":[{outputs}]{extra}}}'
    ).encode()


V2_PATH = f"/v2/models/{MODEL_NAME}/infer"
REQUEST_KINDS = ("predict", "v2-binary", "v2-json")


def request_body(kind: str, batch: int) -> Body:
    if kind == "predict":
        return Body("/predict", predict_body(batch), "application/json")
    if kind == "v2-json":
        return Body(V2_PATH, v2_json_body(batch), "application/json")
    if kind == "v2-binary":
        data, headers = v2_binary_body(batch)
        return Body(V2_PATH, data, "application/octet-stream", headers)
    raise ValueError(f"unknown request kind {kind!r}; choose from {REQUEST_KINDS}")


def mse_of(kind: str, raw: bytes) -> list[float] | None:
    """The MSEs a server answered, from either kind of response body."""
    try:
        if kind == "predict":
            return [p["mse"] for p in json.loads(raw)["predictions"]]
        if kind == "v2-json":
            out = {o["name"]: o for o in json.loads(raw)["outputs"]}
            return [float(x) for x in out["mse"]["data"]]
        import numpy as np

        text = raw.decode("latin-1")  # the JSON header is ASCII; the binary tail follows it
        head, end = json.JSONDecoder().raw_decode(text)
        offset = end
        for out in head["outputs"]:
            size = out["parameters"]["binary_data_size"]
            if out["name"] == "mse":
                return np.frombuffer(raw[offset : offset + size], dtype="<f4").astype(float).tolist()
            offset += size
    except (KeyError, TypeError, ValueError):
        return None
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_env(**extra: str) -> dict[str, str]:
    """Environment for every child: no TF chatter, no BentoML usage tracking (loopback only),
    and TensorFlow's plain kernels for the peers, as our server chooses for its
    single-threaded workers (``ECG_TF_ONEDNN``): no server gets a tuning the others lack.
    The in-process limit tries both kernel sets (``run.run_inprocess``)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env["DO_NOT_TRACK"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env
