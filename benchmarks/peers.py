"""The model servers that need a virtualenv of their own (their pins clash with ours), each
installed on demand into ``benchmarks/out/venvs/<peer>`` with exact pins, only when a run
asks for that peer. ``--smoke`` never does: CI downloads none of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import OUT, quiet_env

VENVS = OUT / "venvs"
TENSORFLOW = "tensorflow==2.21.0"  # the project's own (pyproject.toml): the same kernels for every server
PINS: dict[str, tuple[str, ...]] = {
    # uvloop 0.22 crash-loops MLServer 1.7.1's parallel workers; 0.21.0 does not
    "mlserver": ("mlserver==1.7.1", "uvloop==0.21.0", TENSORFLOW),
    "kserve": ("kserve==0.21.0", TENSORFLOW),
}
REPORTED = ("mlserver", "kserve", "tensorflow", "numpy", "uvicorn", "uvloop", "fastapi", "pydantic")


def python(peer: str) -> Path:
    return VENVS / peer / "bin" / "python"


def _marker(peer: str) -> Path:
    return VENVS / peer / "bench-pins.json"


def installed(peer: str) -> bool:
    marker = _marker(peer)
    return python(peer).is_file() and marker.is_file() and json.loads(marker.read_text()) == list(PINS[peer])


def ensure(peer: str, install: bool, log) -> Path:
    """The peer's interpreter, its venv created and its pins installed first if need be."""
    if installed(peer):
        return python(peer)
    if not install:
        raise SystemExit(f"{peer} is not installed in {VENVS / peer}; run without --no-install")
    log(f"installing {peer} into {VENVS / peer}: {' '.join(PINS[peer])}")
    if not python(peer).is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / peer)], check=True)
    subprocess.run([str(python(peer)), "-m", "pip", "install", "-q", *PINS[peer]], check=True)
    _marker(peer).write_text(json.dumps(list(PINS[peer])))
    return python(peer)


def versions(peer: str) -> dict[str, str]:
    """What the peer's venv holds of the packages that shape its numbers."""
    code = (
        "import json, importlib.metadata as m\n"
        "def v(p):\n"
        "    try: return m.version(p)\n"
        "    except m.PackageNotFoundError: return 'not installed'\n"
        f"print(json.dumps({{p: v(p) for p in {list(REPORTED)!r}}}))"
    )
    proc = subprocess.run([str(python(peer)), "-c", code], capture_output=True, text=True, env=quiet_env())
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def check(name: str, workers: int, install: bool) -> dict:
    """Install (if need be), start, wait for every worker, score 32 beats over V2 REST,
    compare the MSEs with our SavedModel signature's, stop."""
    import time

    import numpy as np

    from benchmarks import procs
    from benchmarks.common import beat_rows, model_path, mse_of, request_body
    from service.artifact import read_metadata
    from service.runtimes import SignatureScorer

    spec = procs.server_specs(workers)[name]
    peer = spec.peer or name
    ensure(peer, install, print)
    log_dir = OUT / f"peer-check-{name}-{time.strftime('%Y%m%dT%H%M%S')}"
    server = procs.start(spec, log_dir)
    try:
        startup = server.wait_ready()
        memory = server.memory()
        body = request_body(spec.request, 32)
        code, raw = procs.http(server.url(body.path), body=body, timeout=30)
        got = mse_of(spec.request, raw) if code == 200 else None
    finally:
        server.stop()
    path = model_path()
    ref = SignatureScorer(path, read_metadata(path).signature_name)(
        np.asarray(beat_rows(32), dtype=np.float32)
    )
    diff = float(np.max(np.abs(np.asarray(got) - ref.mse))) if got else None
    return {
        "server": name,
        "request": spec.request,
        "versions": versions(peer),
        "startup_seconds": round(startup, 2),
        "memory": memory,
        "status": code,
        "max_abs_diff_mse_vs_our_signature": diff,
        "ok": code == 200 and diff is not None and diff <= 1e-6,
        "log": str(server.log_path),
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=check.__doc__)
    ap.add_argument("servers", nargs="*", default=["mlserver", "kserve", "kserve_v2"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-install", action="store_true")
    a = ap.parse_args()
    results = [check(s, a.workers, not a.no_install) for s in a.servers]
    print(json.dumps(results, indent=1))
    raise SystemExit(0 if all(r["ok"] for r in results) else 1)
