"""Runtimes (README, Runtimes): a version served on LiteRT scores exactly as on
TensorFlow, through the same code; the export refuses a copy that is off; a server asked
for a runtime it cannot use stops at start, saying why."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from service.artifact import (
    LITERT_FILE,
    MAX_RUNTIME_DIFFERENCE,
    ArtifactError,
    open_artifact,
    read_metadata,
)
from service.predictor import Predictor
from service.runtimes import SignatureOutputs

from .conftest import BUNDLED_MODELS, BUNDLED_NAME, bundled_copy, publish_version, start_gunicorn


@pytest.fixture(scope="module")
def bundled():
    """The newest bundled version: what a server given saved_models/ serves."""
    return open_artifact(BUNDLED_MODELS, BUNDLED_NAME)


@pytest.fixture(scope="module")
def on_tensorflow(bundled):
    return Predictor.load(bundled, "tensorflow", 1)


@pytest.fixture(scope="module")
def on_litert(bundled):
    return Predictor.load(bundled, "litert", 1)


def test_the_bundled_model_scores_the_same_on_litert_and_tensorflow(pool, on_tensorflow, on_litert):
    """Every one of the 5,000 real ECG5000 beats (plus some out of range), in batches of
    1, 7 and 256: the same MSE and per-point errors to 1e-6, the same flags."""
    beats = np.concatenate([pool.beats, pool.beats[:64] * 3.0])  # some beyond the scaler's range
    for size in (1, 7, 256):
        for start in range(0, len(beats) if size > 1 else 200, size):
            chunk = beats[start : start + size]
            a, b = on_tensorflow.predict(chunk), on_litert.predict(chunk)
            assert np.max(np.abs(a.mse - b.mse)) <= MAX_RUNTIME_DIFFERENCE
            assert np.max(np.abs(a.point_errors - b.point_errors)) <= MAX_RUNTIME_DIFFERENCE
            np.testing.assert_array_equal(a.is_anomaly, b.is_anomaly)
            np.testing.assert_array_equal(a.out_of_range, b.out_of_range)
            np.testing.assert_allclose(a.reconstruction, b.reconstruction, atol=1e-4)
            assert a.threshold == b.threshold


def test_a_custom_threshold_applies_the_same_on_both(pool, on_tensorflow, on_litert):
    beats = pool.beats[:300]
    for threshold in (1e-4, 2e-3, 0.05):
        a, b = on_tensorflow.predict(beats, threshold), on_litert.predict(beats, threshold)
        np.testing.assert_array_equal(a.is_anomaly, b.is_anomaly)


def test_litert_outputs_are_the_callers_own(on_litert, pool):
    """The interpreter reuses its buffers; a result must not change under a later call."""
    first = on_litert.predict(pool.beats[:3])
    kept = first.mse.copy()
    on_litert.predict(pool.beats[100:103])
    np.testing.assert_array_equal(first.mse, kept)


def test_every_training_run_exports_a_checked_litert_copy(tiny_run):
    meta = tiny_run.metadata
    (copy,) = meta.portable
    assert (copy.runtime, copy.file, copy.same_flags) == ("litert", LITERT_FILE, True)
    assert copy.checked_beats == len(meta.split.validation_indices)
    assert max(copy.max_abs_diff["mse"], copy.max_abs_diff["point_errors"]) <= MAX_RUNTIME_DIFFERENCE
    assert (tiny_run.path / LITERT_FILE).is_file()
    assert read_metadata(tiny_run.path) == meta


def test_a_copy_that_differs_from_the_signature_is_not_published(tmp_path, bundled, pool):
    """The export compares the copy with the signature's own outputs; here they are
    shifted by 1e-5, as a converter that lost precision would give."""
    from training.portable import add_litert_copy

    folder = tmp_path / "1"
    shutil.copytree(bundled.path, folder)
    (folder / LITERT_FILE).unlink()
    beats = pool.beats[:200]
    truth = Predictor.load(bundled, "tensorflow").predict(beats)
    off = SignatureOutputs(truth.reconstruction, truth.point_errors + 1e-5, truth.mse + 1e-5)
    with pytest.raises(ArtifactError, match=r"differs from the signature .* not published"):
        add_litert_copy(folder, beats, bundled.metadata.threshold.value, off)
    assert not (folder / LITERT_FILE).exists()


def test_a_version_published_without_a_copy_gets_one(tmp_path, bundled):
    """``python -m training.portable``: the bundled version 1 got its copy this way."""
    from training.portable import main

    models = tmp_path / "models"
    folder = bundled_copy(models)
    (folder / LITERT_FILE).unlink()
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, "portable": []}))
    assert read_metadata(folder).portable == []
    assert main([str(folder)]) == 0
    copy = read_metadata(folder).portable_copy("litert")
    assert copy is not None and copy.max_abs_diff["mse"] <= MAX_RUNTIME_DIFFERENCE
    assert main([str(folder)]) == 1  # once only
    assert not list(folder.glob(".metadata-*"))


def test_a_copy_whose_bytes_changed_is_refused(tmp_path, bundled):
    models = tmp_path / "models"
    folder = bundled_copy(models)
    (folder / LITERT_FILE).write_bytes((folder / LITERT_FILE).read_bytes()[:-16])
    with pytest.raises(ArtifactError, match="is not the file the export checked"):
        Predictor.load(open_artifact(models, BUNDLED_NAME), "litert")


# --- a real server on LiteRT ---------------------------------------------------------------


def maps_of(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture(scope="module")
def litert_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("litert")
    models = tmp / "models"
    bundled_copy(models)
    srv = start_gunicorn(tmp, models, BUNDLED_NAME, ECG_RUNTIME="litert")
    try:
        srv.wait_ready()
        yield srv, models
    finally:
        srv.stop()


def test_a_litert_server_answers_as_the_tensorflow_predictor_does(litert_server, pool):
    """Against TensorFlow on the version the server serves (the copy's version 1; the
    in-process tests above check the newest bundled version)."""
    srv, models = litert_server
    beats = pool.beats[:64]
    body = requests.post(srv.url + "/predict", json={"beats": beats.tolist()}, timeout=30).json()
    want = Predictor.load(open_artifact(models, BUNDLED_NAME, 1), "tensorflow", 1).predict(beats)
    got = np.array([p["mse"] for p in body["predictions"]])
    assert np.max(np.abs(got - want.mse)) <= MAX_RUNTIME_DIFFERENCE
    assert [p["is_anomaly"] for p in body["predictions"]] == want.is_anomaly.tolist()
    v2 = {
        "inputs": [{"name": "beats", "shape": [64, 140], "datatype": "FP32", "data": beats.ravel().tolist()}]
    }
    out = requests.post(srv.url + "/v2/models/ecg-autoencoder/infer", json=v2, timeout=30).json()
    mse = next(o for o in out["outputs"] if o["name"] == "mse")["data"]
    assert np.max(np.abs(np.array(mse) - want.mse)) <= MAX_RUNTIME_DIFFERENCE
    bad = requests.post(srv.url + "/predict", json={"beats": [[1.0] * 139]}, timeout=30)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"


def test_a_litert_server_never_loads_tensorflow(litert_server):
    srv, _ = litert_server
    for pid in [srv.process.pid, *srv.worker_pids()]:
        maps = maps_of(pid)
        assert "libtensorflow" not in maps and "_pywrap_tensorflow" not in maps, pid
    assert all("ai_edge_litert" in maps_of(pid) for pid in srv.worker_pids())
    assert "ai_edge_litert" not in maps_of(srv.process.pid)  # the master imports no runtime


def test_a_litert_server_reloads_a_new_version_on_sighup(litert_server):
    srv, models = litert_server
    publish_version(models, 2)
    srv.process.send_signal(signal.SIGHUP)
    srv.wait_for_log("reload: serving ecg-autoencoder version 2")
    deadline_text = 'ecg_model_info{model_name="ecg-autoencoder",model_version="2"'
    import time

    deadline = time.monotonic() + 120
    while True:
        metrics = requests.get(srv.url + "/metrics", timeout=30).text
        if deadline_text in metrics and 'model_version="1"' not in metrics:
            break
        assert time.monotonic() < deadline, metrics[-2000:]
        time.sleep(0.2)
    r = requests.post(srv.url + "/predict", json={"beats": [[0.1] * 140]}, timeout=30)
    assert r.status_code == 200 and r.json()["model_version"] == 2


def test_a_sighup_to_a_version_without_a_copy_keeps_serving_the_one_with_it(tmp_path):
    models = tmp_path / "models"
    bundled_copy(models)
    srv = start_gunicorn(tmp_path, models, BUNDLED_NAME, workers=1, ECG_RUNTIME="litert")
    try:
        srv.wait_ready(workers=1)
        meta = json.loads((models / BUNDLED_NAME / "1" / "metadata.json").read_text())
        publish_version(models, 2, json.dumps({**meta, "version": 2, "portable": []}))
        srv.process.send_signal(signal.SIGHUP)
        srv.wait_for_log("reload keeps version 1")
        assert "has no litert copy" in srv.log()
        r = requests.post(srv.url + "/predict", json={"beats": [[0.1] * 140]}, timeout=30)
        assert r.status_code == 200 and r.json()["model_version"] == 1
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("runtime", "prepare", "says"),
    [
        ("onnx", None, "runtime"),
        ("litert", "strip", "has no litert copy"),
    ],
)
def test_a_server_that_cannot_use_its_runtime_stops_at_start_saying_why(tmp_path, runtime, prepare, says):
    import subprocess

    models = tmp_path / "models"
    folder = bundled_copy(models)
    if prepare == "strip":
        meta = json.loads((folder / "metadata.json").read_text())
        (folder / "metadata.json").write_text(json.dumps({**meta, "portable": []}))
    srv = start_gunicorn(tmp_path, models, BUNDLED_NAME, ECG_RUNTIME=runtime)
    try:
        assert srv.process.wait(90) != 0
    except subprocess.TimeoutExpired:
        srv.stop()
        raise
    assert says in srv.log(), srv.log()[-2000:]
    assert "Booting worker" not in srv.log()


_HEAP_OR_MMAP = """
import ctypes, sys
from service import malloc
tuned = sys.argv[1] == "tuned"
if tuned:
    assert malloc.tune_for_requests()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
address = libc.malloc(2 * 1024 * 1024)  # a 256-beat body, its arrays or its answer
for line in open("/proc/self/maps"):
    start, end = (int(x, 16) for x in line.split()[0].split("-"))
    if start <= address < end:
        print("heap" if line.rstrip().endswith("[heap]") else "mmap")
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux with glibc")
def test_a_worker_keeps_large_request_buffers_in_its_heap(tmp_path):
    """A worker's allocator (service/malloc.py) serves a request's large buffers from the
    heap, as a TensorFlow worker's does, instead of fresh zero-filled pages each time."""
    script = tmp_path / "where.py"
    script.write_text(_HEAP_OR_MMAP)
    root = Path(__file__).resolve().parents[1]

    def where(mode: str) -> str:
        out = subprocess.run([sys.executable, str(script), mode], cwd=root, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert where("default") == "mmap"  # glibc's default, what a LiteRT worker had
    assert where("tuned") == "heap"
