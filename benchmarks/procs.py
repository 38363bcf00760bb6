"""Starting, probing, measuring and stopping the servers under test.

Every server runs in its own session (process group) on a free loopback port; the
harness stops it by that group id. Ready means every worker has loaded its model:
our server's ``/metrics`` sums ``ecg_worker_ready`` over workers; the others answer with
their process id, and the harness waits until it has seen as many ids as workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.common import OUT, PYTHON, REPO, Body, free_port, quiet_env


def http(
    url: str, data: bytes | None = None, timeout: float = 5.0, body: Body | None = None
) -> tuple[int, bytes]:
    if body is not None:
        data = body.data
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", body.content_type if body else "application/json")
        for k, v in (body.headers if body else {}).items():
            req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


# ---------------------------------------------------------------- process memory


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB; PSS shares each shared page among the processes mapping it."""
    rss = pss = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
            rss = int(m.group(1)) / 1024 if m else 0.0
        with open(f"/proc/{pid}/smaps_rollup") as f:
            m = re.search(r"\nPss:\s+(\d+) kB", f.read())
            pss = int(m.group(1)) / 1024 if m else 0.0
    except OSError:
        pass
    return rss, pss


# ---------------------------------------------------------------- servers


@dataclass
class ServerSpec:
    name: str
    title: str
    argv: list[str]
    workers: int
    env: dict[str, str] = field(default_factory=dict)
    ready: str = "pids"  # "metrics": /metrics ecg_worker_ready; "pids": distinct worker pids
    # sent to every worker at once, and held a moment by the server, so that each request
    # finds a different worker: our workers hand a lone request to the same one every time
    pid_probe: tuple[str, bytes | None] = ("/readyz?hold=0.05", None)
    is_worker: Callable[[int, int, str], bool] | None = None  # (pid, root, cmdline)
    start_timeout: float = 180.0
    root: Path = REPO  # the source tree it runs from (a patched copy, for A/B runs)
    request: str = "predict"  # the request kind it is sent (benchmarks.common.request_body)
    peer: str | None = None  # run from that peer's own venv (benchmarks.peers), installed on demand


@dataclass
class Server:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen
    started: float
    log_path: Path
    startup_seconds: float | None = None
    tmp: tempfile.TemporaryDirectory | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def processes(self) -> list[int]:
        return descendants(self.proc.pid)

    def worker_pids(self) -> list[int]:
        pids = self.processes()
        if self.spec.is_worker:
            # none found: the server serves from its own process (KServe with one worker)
            return [p for p in pids if self.spec.is_worker(p, self.proc.pid, cmdline(p))] or [self.proc.pid]
        kids = _children().get(self.proc.pid, [])
        return [p for p in pids if p in kids]

    def memory(self) -> dict:
        workers = self.worker_pids()
        per = [memory_mb(p) for p in workers]
        tree = [memory_mb(p) for p in self.processes()]
        return {
            "worker_rss_mb": [round(r, 1) for r, _ in per],
            "worker_pss_mb": [round(s, 1) for _, s in per],
            "total_rss_mb": round(sum(r for r, _ in tree), 1),
            "total_pss_mb": round(sum(s for _, s in tree), 1),
            "processes": len(tree),
        }

    def _ready_now(self, seen: set[int]) -> bool:
        if self.spec.ready == "metrics":
            code, body = http(self.url("/metrics"), timeout=2)
            if code != 200:
                return False
            total = sum(
                float(v) for v in re.findall(rb"^ecg_worker_ready(?:\{[^}]*\})? ([0-9.eE+-]+)$", body, re.M)
            )
            return total >= self.spec.workers
        path, data = self.spec.pid_probe
        with ThreadPoolExecutor(self.spec.workers) as probes:
            url = self.url(path)
            answers = list(probes.map(lambda _: http(url, data=data, timeout=2), range(self.spec.workers)))
        for code, body in answers:
            if code == 200:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    doc = json.loads(body)  # ours: {"pid": ...}; a V2 answer: its parameters
                    seen.add(int(doc["pid"] if "pid" in doc else doc["parameters"]["pid"]))
        return len(seen) >= self.spec.workers

    def wait_ready(self) -> float:
        seen: set[int] = set()
        deadline = self.started + self.spec.start_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.spec.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
            if self._ready_now(seen):
                self.startup_seconds = time.monotonic() - self.started
                return self.startup_seconds
            time.sleep(0.05)
        raise RuntimeError(f"{self.spec.name} not ready after {self.spec.start_timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 25.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


def start(spec: ServerSpec, log_dir: Path) -> Server:
    port = free_port()
    tmp = tempfile.TemporaryDirectory(prefix=f"bench-{spec.name}-")
    env = quiet_env(
        PYTHONPATH=os.pathsep.join(dict.fromkeys([str(spec.root), str(REPO)])),
        ECG_BIND=f"127.0.0.1:{port}",
        ECG_WORKERS=str(spec.workers),
        PROMETHEUS_MULTIPROC_DIR=str(Path(tmp.name) / "metrics"),
        ECG_BENCH_TMP=tmp.name,  # scratch space of this server, removed at stop
        **spec.env,
    )
    if spec.peer:  # a peer's own metrics setup (prometheus-client would write to a missing folder)
        env.pop("PROMETHEUS_MULTIPROC_DIR")
    argv = [a.replace("{port}", str(port)).replace("{root}", str(spec.root)) for a in spec.argv]
    argv = [str(free_port()) if a == "{free_port}" else a for a in argv]
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    started = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=spec.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(spec, port, proc, started, log_path, tmp=tmp)


def gunicorn_argv(app: str | None) -> list[str]:
    argv = [PYTHON, "-m", "service", "-c", "{root}/gunicorn.conf.py"]
    return [*argv, app] if app else argv


def _bento_worker(pid: int, root: int, cmd: str) -> bool:
    return "_bentoml_impl.worker" in cmd


def _spawned_worker(pid: int, root: int, cmd: str) -> bool:
    """A worker started by multiprocessing's spawn (MLServer's and KServe's workers), not
    its resource tracker."""
    return "spawn_main" in cmd


def _v2_probe() -> tuple[str, bytes]:
    from benchmarks.common import V2_PATH, v2_json_body

    return V2_PATH, v2_json_body(1, {"hold": 0.05})


def peer_specs(workers: int) -> dict[str, ServerSpec]:
    """MLServer and KServe, each from its own venv (benchmarks.peers), over V2 REST with JSON tensors."""
    from benchmarks import peers
    from benchmarks.common import model_path

    model = str(model_path())
    specs = {
        "mlserver": ServerSpec(
            "mlserver", "Seldon MLServer 1.7.1, custom runtime, V2 REST (JSON tensors)",
            [str(peers.python("mlserver")), "-m", "benchmarks.servers.mlserver_runtime",
             "--port", "{port}", "--workers", str(workers), "--model", model],
            workers, pid_probe=_v2_probe(), is_worker=_spawned_worker, request="v2-json", peer="mlserver",
        ),
        "kserve": ServerSpec(
            "kserve", "KServe 0.21.0 Python model server, kserve.Model, V2 REST (JSON tensors)",
            [str(peers.python("kserve")), "-m", "benchmarks.servers.kserve_model",
             "--http_port", "{port}", "--grpc_port", "{free_port}", "--workers", str(workers),
             "--model_dir", model],
            workers, pid_probe=_v2_probe(), is_worker=_spawned_worker, request="v2-json", peer="kserve",
        ),
    }  # fmt: skip
    # the same KServe server, sent our /v2 bodies: binary tensors in and out (KServe's REST
    # API has the extension; MLServer's has not)
    specs["kserve_v2"] = replace(
        specs["kserve"], name="kserve_v2", title=specs["kserve"].title.replace("JSON", "binary"),
        request="v2-binary",
    )  # fmt: skip
    return specs


def server_specs(workers: int) -> dict[str, ServerSpec]:
    bento_home = str(OUT / "bentoml_home")
    return {
        "floor": ServerSpec(
            "floor", "no-op JSON endpoint, same gunicorn + Flask setup",
            gunicorn_argv("benchmarks.servers.noop:app"), workers,
        ),
        "ours": ServerSpec(
            "ours", "ours: /predict, TensorFlow SavedModel signature",
            gunicorn_argv(None), workers, ready="metrics",
        ),
        "ours_onnx": ServerSpec(
            "ours_onnx", "ours with ONNX Runtime in place of TensorFlow",
            gunicorn_argv("benchmarks.servers.onnx_wsgi:app"), workers, ready="metrics",
        ),
        "ours_v2": ServerSpec(
            "ours_v2", "ours: /v2/models/<name>/infer, binary tensors, TensorFlow SavedModel signature",
            gunicorn_argv(None), workers, ready="metrics", request="v2-binary",
        ),
        "ours_onnx_v2": ServerSpec(
            "ours_onnx_v2", "ours: /v2 binary tensors, ONNX Runtime in place of TensorFlow",
            gunicorn_argv("benchmarks.servers.onnx_wsgi:app"), workers, ready="metrics", request="v2-binary",
        ),
        "ours_litert": ServerSpec(
            "ours_litert", "ours with ECG_RUNTIME=litert: the version's LiteRT copy, no TensorFlow",
            gunicorn_argv(None), workers, env={"ECG_RUNTIME": "litert"}, ready="metrics",
        ),
        "ours_litert_v2": ServerSpec(
            "ours_litert_v2", "ours: /v2 binary tensors, ECG_RUNTIME=litert",
            gunicorn_argv(None), workers, env={"ECG_RUNTIME": "litert"}, ready="metrics", request="v2-binary",
        ),
        "naive": ServerSpec(
            "naive", "naive: Flask + Keras model.predict",
            gunicorn_argv("benchmarks.servers.naive_keras:app"), workers,
        ),
        "bentoml": ServerSpec(
            "bentoml", "BentoML 1.4 (bentoml serve, no batching)",
            [PYTHON, "-m", "bentoml", "serve", "benchmarks.servers.bentoml_service:EcgAutoencoder",
             "--host", "127.0.0.1", "--port", "{port}"],
            workers,
            env={"BENTOML_HOME": bento_home, "ECG_BENTO_WORKERS": str(workers)},
            pid_probe=("/worker", b"{}"),
            is_worker=_bento_worker,
        ),
        **peer_specs(workers),
    }  # fmt: skip


def variant(text: str, specs: dict[str, ServerSpec]) -> ServerSpec:
    """``NAME=BASE;root=/tree;args=-k gthread --threads 2;env=K=V,K2=V2``: a copy of server
    BASE under another name, from another source tree, with extra command-line arguments
    (gunicorn's command line overrides gunicorn.conf.py) and environment."""
    head, *opts = text.split(";")
    name, _, base = head.partition("=")
    if base not in specs:
        raise ValueError(f"variant {text!r}: unknown base server {base!r}")
    b = specs[base]
    spec = ServerSpec(
        name.strip(), f"{b.title} [{text}]", list(b.argv), b.workers, dict(b.env), b.ready,
        b.pid_probe, b.is_worker, b.start_timeout, b.root, b.request, b.peer,
    )  # fmt: skip
    for opt in opts:
        key, _, value = opt.partition("=")
        key = key.strip()
        if key == "root":
            spec.root = Path(value).resolve()
        elif key == "args":
            spec.argv += value.split()
        elif key == "env":
            for pair in value.split(","):
                k, _, v = pair.partition("=")
                spec.env[k.strip()] = v
        else:
            raise ValueError(f"variant {text!r}: unknown option {key!r}")
    return spec


class TfOnlyProbe:
    """A process that only imports TensorFlow: its RSS is the yardstick for a worker's."""

    def measure(self, timeout: float = 120.0) -> dict:
        started = time.monotonic()
        proc = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.servers.tf_only"], cwd=REPO, env=quiet_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None  # both are pipes
        try:
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError("the TensorFlow-only process did not start")
            seconds = time.monotonic() - started
            rss, pss = memory_mb(proc.pid)
            return {"rss_mb": round(rss, 1), "pss_mb": round(pss, 1), "import_seconds": round(seconds, 2)}
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
