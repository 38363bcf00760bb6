"""The serving benchmark (``python -m benchmarks``) runs end to end on a tiny setting.

Not a performance test: ``--smoke`` is one round of half-second cells with one worker per
server, so its numbers mean nothing. It checks that every compared server starts, answers
the same beats with the same model, and that the report is written. The harness installs
its own tools when they are missing (``benchmarks/requirements.txt`` into this venv, and
Debian's ``hey``); where it cannot (no root for apt-get), the test says so and skips, on
a developer machine only: under CI it fails instead.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, missing, require_tool

# the default run's servers; the downloaded peers (MLServer, KServe) are not part of --smoke
SERVERS = {"floor", "ours", "ours_v2", "ours_litert", "ours_litert_v2", "naive", "bentoml"}


def test_benchmark_runs_on_a_tiny_setting(tmp_path: Path) -> None:
    require_tool("hey")
    for module in ("bentoml", "tf2onnx", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            missing(f"the Python module {module}", "pip install -e '.[bench]'; make test installs it")
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--no-install", "--out-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"benchmark failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    data = json.loads((out / "results.json").read_text())
    (rnd,) = data["rounds"]
    cells = rnd["cells"]
    assert {c["server"] for c in cells} == SERVERS
    assert len(cells) == len(SERVERS) * 2 * 2  # batches 1 and 32, concurrency 1 and 8
    for c in cells:
        assert "error" not in c, c
        assert c["requests"] > 0 and c["errors"] == 0 and c["rps"] > 0, c
        assert 0 < c["p50_ms"] <= c["p99_ms"], c

    # every model server scored the same beats with the same model
    mse = {s: rnd["servers"][s]["mse_batch32"] for s in SERVERS - {"floor"}}
    for name, values in mse.items():
        assert len(values) == 32, name
        assert max(abs(a - b) for a, b in zip(values, mse["ours"], strict=True)) < 1e-5, name

    inproc = rnd["inprocess"]
    kinds = [("tf", "signature"), ("litert", "signature"), ("onnx", "signature"), ("tf", "scorer")]
    kinds += [(backend, kind) for backend in ("tf", "litert", "onnx") for kind in ("path", "v2path")]
    assert {(r["backend"], r["kind"], r["batch"]) for r in inproc["results"]} == {
        (backend, kind, n) for backend, kind in kinds for n in (1, 32)
    }
    assert inproc["onnx_vs_tf"]["same_flags"] and inproc["litert_vs_tf"]["same_flags"]
    assert inproc["litert_vs_tf"]["max_abs_diff_mse"] < 1e-6
    assert rnd["tf_only"]["rss_mb"] > 0
    for name in SERVERS:
        info = rnd["servers"][name]
        assert info["startup_seconds"] > 0 and info["alive_at_end"], name
        assert len(info["memory_loaded"]["worker_rss_mb"]) == 1, name  # --smoke: one worker
        solo = info["alone"]  # started once with none of the others running
        assert solo["startup_seconds"] > 0 and solo["memory_loaded"]["total_pss_mb"] > 0, name

    report = (out / "RESULTS.md").read_text()
    assert "Smoke run" in report
    for heading in (
        "## Targets (issue 18)",
        "## Over HTTP",
        "## The limit",
        "## The TensorFlow tax",
        "## Memory",
    ):
        assert heading in report
    assert "ours, LiteRT runtime" in report
    assert "## Failed cells" not in report
