# ruff: noqa: E501  (long lines of Markdown text)
"""The moments of change, measured: ``python -m benchmarks.lifecycle`` (about 6 minutes).

Our server as deployed (``python -m service -c gunicorn.conf.py``) and, paired with it in
every round, the same app under gunicorn's own master and sync worker with no
configuration (``gunicorn -w 2 service.wsgi:app``), both with 2 workers and the bundled
model, while another process keeps one core busy. Per server and round:

- **one client**: 200 sequential requests on an idle server; the share served by the
  busiest worker (one warm worker taking a lone client's requests is the point of the
  exclusive wake-ups in ``service/worker.py``);
- **reload**: 8 clients, a new connection per request, and SIGHUP twice, each once the
  previous reload has put its new workers in place;
- **kill**: 8 clients and one worker SIGKILLed, until its replacement is ready;
- **shutdown**: 8 clients and SIGTERM: what every request got, when readiness turned 503,
  when the listener stopped taking connections, when the server exited and with what.

Writes ``benchmarks/LIFECYCLE.md``. The test suite checks each property's mechanism and
its outcome without timing (``tests/test_lifecycle.py``); the timings are here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import requests

from benchmarks.common import BENCH, MODEL_DIR, MODEL_NAME, PYTHON, REPO, free_port
from benchmarks.report import environment

CLIENTS = 8
SERVERS = ("ours", "gunicorn")
TITLES = {
    "ours": "ours: `python -m service -c gunicorn.conf.py`",
    "gunicorn": "gunicorn's own master and sync worker: `gunicorn -w 2 service.wsgi:app`",
}


class Server:
    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind, self.port = kind, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{kind}.log"
        env = {
            **os.environ,
            "ECG_MODEL_DIR": str(MODEL_DIR),
            "ECG_MODEL_NAME": MODEL_NAME,
            "ECG_WORKERS": "2",
            "ECG_BIND": f"127.0.0.1:{self.port}",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"{kind}-metrics"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
        if kind == "ours":
            argv = [PYTHON, "-m", "service", "-c", str(REPO / "gunicorn.conf.py")]
        else:
            empty = tmp / "empty.conf.py"  # not the repository's gunicorn.conf.py, read by default
            empty.write_text("")
            argv = [
                PYTHON,
                "-m",
                "gunicorn",
                "-c",
                str(empty),
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{self.port}",
                "service.wsgi:app",
            ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, count: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.kind}: never logged {text!r} x{count}\n{self.log()[-2000:]}")
            time.sleep(0.05)

    def wait_ready(self, generations: int = 1) -> None:
        """Every worker of the newest generation has its model loaded and warmed (from the
        log: gunicorn's own master keeps no readiness gauge of dead workers right)."""
        self.wait_for("model ready", 2 * generations)

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # quick: the shutdown is measured elsewhere
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Load:
    """Client threads posting one beat to /predict, each request on a new connection (as
    to gunicorn's sync workers), recording what every request got: its status, "refused"
    (nothing listening), "reset" (a connection accepted, then dropped, before or during
    the answer) or the exception's name. The tests use it too (``tests/test_lifecycle.py``)."""

    def __init__(
        self, server, clients: int = CLIENTS, headers: Callable[[], dict[str, str]] | None = None
    ) -> None:
        self.server = server  # anything with a ``url``
        self.headers = headers  # each request's extra headers, asked anew (e.g. a key being rotated)
        self.outcomes: list[tuple[float, int | str]] = []
        self.latencies: list[float] = []
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        body = {"beats": [[0.1] * 140]}
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                headers = self.headers() if self.headers else None
                outcome: int | str = requests.post(
                    f"{self.server.url}/predict", json=body, headers=headers, timeout=60
                ).status_code
            except requests.ConnectionError as exc:
                outcome = "refused" if refused(exc) else "reset"
            except requests.exceptions.ChunkedEncodingError:
                outcome = "reset"  # dropped after the headers, before the whole body
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            self.outcomes.append((sent, outcome))
            if outcome == 200:
                self.latencies.append(time.monotonic() - sent)
            if outcome == "refused":
                time.sleep(0.05)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(90)

    def count(self) -> Counter:
        return Counter(outcome for _, outcome in self.outcomes)

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        """Until ``n`` requests in all have been answered 200."""
        deadline = time.monotonic() + timeout
        while self.count()[200] < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} answers expected: {self.count()}")
            time.sleep(0.05)

    def counts(self) -> dict[str, int | float]:
        """Outcomes, and the phase's length and slowest 200 in seconds."""
        counts: dict[str, int | float] = {str(k): v for k, v in sorted(self.count().items(), key=str)}
        counts["seconds"] = round(time.monotonic() - self.started, 1)
        counts["slowest 200 (s)"] = round(max(self.latencies, default=float("nan")), 2)
        return counts


class ReadinessPoll:
    """A thread asking ``/readyz`` every ``every`` seconds while it runs, recording (when
    asked, its status or "no answer"). The tests use it too."""

    def __init__(self, server, every: float = 0.02) -> None:
        self.server, self.every = server, every
        self.answers: list[tuple[float, int | str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._done.is_set():
            at = time.monotonic()
            try:
                self.answers.append((at, requests.get(f"{self.server.url}/readyz", timeout=60).status_code))
            except requests.RequestException:
                self.answers.append((at, "no answer"))
            time.sleep(self.every)

    def __enter__(self) -> ReadinessPoll:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join(90)


def refused(exc: object) -> bool:
    """Whether a requests error was a refused connection, however deep urllib3 wrapped it."""
    for _ in range(10):
        if not isinstance(exc, BaseException):
            return False
        if isinstance(exc, ConnectionRefusedError):
            return True
        exc = exc.__cause__ or getattr(exc, "reason", None) or (exc.args[0] if exc.args else None)
    return False


def one_client(server: Server, n: int = 200) -> float:
    tag = f"lone-{time.monotonic_ns()}"
    for i in range(n):
        requests.get(f"{server.url}/livez", headers={"X-Request-ID": f"{tag}-{i}"}, timeout=60)
    time.sleep(0.5)  # the last access lines
    records = [json.loads(line) for line in server.log().splitlines() if f'"request_id":"{tag}-' in line]
    by_worker = Counter(record["pid"] for record in records)
    return max(by_worker.values()) / len(records) if records else float("nan")


def reload_twice(server: Server) -> dict[str, int | float]:
    with Load(server) as load:
        load.wait_for(20)
        for generation in (2, 3):
            server.process.send_signal(signal.SIGHUP)
            server.wait_ready(generations=generation)
            server.wait_for("Worker exiting", 2 * (generation - 1))
        time.sleep(1)
    return load.counts()


def kill_one(server: Server) -> dict[str, int | float]:
    loaded = server.log().count("model ready")
    with Load(server) as load:
        load.wait_for(20)
        os.kill(server.workers()[0], signal.SIGKILL)
        server.wait_for("model ready", loaded + 1)  # the respawned worker's
        time.sleep(1)
    return load.counts()


def shut_down(server: Server) -> dict:
    with Load(server) as load:
        load.wait_for(20)
        with ReadinessPoll(server) as readiness:
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            code = server.process.wait(120)
            exited = time.monotonic()
            time.sleep(0.5)
    first_503 = min((at for at, s in readiness.answers if s == 503 and at >= signalled), default=None)
    refused = min((at for at, o in load.outcomes if o == "refused"), default=None)
    return {
        "counts": load.counts(),
        "served_after_signal": sum(1 for at, o in load.outcomes if at >= signalled and o == 200),
        "readiness_503_ms": None if first_503 is None else round(1000 * (first_503 - signalled)),
        "closed_s": None if refused is None else round(refused - signalled, 2),
        "exit_s": round(exited - signalled, 2),
        "exit_code": code,
    }


def run_round(kind: str, tmp: Path) -> dict:
    server = Server(kind, tmp)
    try:
        server.wait_ready()
        result: dict = {"one_client_share": one_client(server)}
        result["reload"] = reload_twice(server)
        result["kill"] = kill_one(server)
        result["shutdown"] = shut_down(server)
        return result
    finally:
        server.stop()


def fmt_counts(rounds: list[dict[str, int | float]]) -> str:
    return "<br>".join(", ".join(f"{k}: {v}" for k, v in r.items()) for r in rounds)


def report(results: dict[str, list[dict]], env: dict, command: str, busy: bool) -> str:
    lines = [
        "# Lifecycle: what clients see through reload, a killed worker and shutdown",
        "",
        f"- **Command:** `{command}`",
        f"- **Machine:** {env['cpu_model']}, {env['cpus']} CPUs, {env['ram_gib']} GiB, kernel {env['kernel']}, Python {env['python']}, gunicorn {env['versions']['gunicorn']}; {env['date_utc']}, commit `{env['git_commit']}`"
        + (f" (uncommitted: {', '.join(env['git_dirty'])})" if env["git_dirty"] else ""),
        f"- **Load:** {CLIENTS} client threads (Python `requests`), one beat per `/predict`, a new connection per request"
        + ("; another process keeps one core at 100% throughout." if busy else "; no other load."),
        "- Outcomes: an HTTP status, `refused` (nothing listening: fine once the listener has closed) or `reset` (a connection accepted, then dropped).",
        "",
        "| | " + " | ".join(TITLES[k] for k in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def row(name: str, cell) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(results[k]) for k in results) + " |")

    def per_round(values) -> str:
        return ", ".join(str(v) for v in values)

    row(
        "one client, share on the busiest worker (per round)",
        lambda rs: per_round(f"{r['one_client_share']:.0%}" for r in rs),
    )
    row("SIGHUP twice under load (per round)", lambda rs: fmt_counts([r["reload"] for r in rs]))
    row("a worker SIGKILLed under load (per round)", lambda rs: fmt_counts([r["kill"] for r in rs]))
    row("SIGTERM under load (per round)", lambda rs: fmt_counts([r["shutdown"]["counts"] for r in rs]))
    row(
        "SIGTERM: 200s for requests sent after it",
        lambda rs: per_round(r["shutdown"]["served_after_signal"] for r in rs),
    )
    row(
        "SIGTERM: readiness 503 after (ms)",
        lambda rs: per_round(r["shutdown"]["readiness_503_ms"] for r in rs),
    )
    row(
        "SIGTERM: first refused connection after (s)",
        lambda rs: per_round(r["shutdown"]["closed_s"] for r in rs),
    )
    row(
        "SIGTERM: exited after (s), status",
        lambda rs: per_round(f"{r['shutdown']['exit_s']} ({r['shutdown']['exit_code']})" for r in rs),
    )
    shares = {k: statistics.median(r["one_client_share"] for r in rs) for k, rs in results.items()}
    lines += [
        "",
        f"Median share of a lone client's requests on one worker: {', '.join(f'{k} {v:.0%}' for k, v in shares.items())}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lifecycle", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quiet-machine", action="store_true", help="no busy core")
    parser.add_argument("--out", type=Path, default=BENCH / "LIFECYCLE.md")
    args = parser.parse_args(argv)
    command = (
        "python -m benchmarks.lifecycle"
        + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
        + (" --quiet-machine" if args.quiet_machine else "")
    )
    hog = None if args.quiet_machine else subprocess.Popen([PYTHON, "-c", "while True: pass"])
    results: dict[str, list[dict]] = {k: [] for k in SERVERS}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.rounds):
                order = SERVERS if i % 2 == 0 else SERVERS[::-1]  # interleaved
                for kind in order:
                    print(f"round {i + 1}: {kind}", flush=True)
                    results[kind].append(run_round(kind, Path(tmp)))
                    print(f"  {results[kind][-1]}", flush=True)
    finally:
        if hog:
            hog.kill()
    args.out.write_text(report(results, environment("hey"), command, busy=hog is not None))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
