"""One command for the whole comparison: ``python -m benchmarks`` (``--smoke`` for CI).

Steps: install the benchmark's tools if missing; convert the SavedModel to ONNX (tf2onnx)
and import it into a BentoML model store (both under the git-ignored ``benchmarks/out``);
then, for each round: measure a TensorFlow-only process's memory, time in-process
scoring, start every server one at a time (start-up time, memory at ready), warm it up,
and run every (batch, concurrency) cell on every server — cells in a shuffled order and,
within a cell, servers in a shuffled order, so that paired numbers are seconds apart —
then read memory after load and stop the servers. Ratios are taken within each round and
then summarised (median and range over rounds). Writes ``results.json`` in the run's
folder and ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import loadgen, peers, procs, report
from benchmarks.common import BENCH, OUT, PYTHON, REPO, Body, model_path, mse_of, quiet_env, request_body
from benchmarks.servers.onnx_predictor import onnx_file

# The default run; ``--smoke`` runs the same minus the peers it would have to download.
SMOKE_SERVERS = ("floor", "ours", "ours_v2", "ours_litert", "ours_litert_v2", "naive", "bentoml")
# each in a venv of its own, installed on demand (benchmarks.peers); KServe over both V2 encodings
PEERS = ("mlserver", "kserve", "kserve_v2")
DEFAULT_SERVERS = (*SMOKE_SERVERS, *PEERS)
# Opt-in (``--servers``): ONNX Runtime inside our server, the reference the project chose
# LiteRT over (benchmarks/RUNTIMES.md; the in-process part keeps its line every run).
ALL_SERVERS = (*DEFAULT_SERVERS, "ours_onnx", "ours_onnx_v2")
PY_TOOLS = {"bentoml": "bentoml", "tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime", "onnx": "onnx"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- setup


def ensure_tools(loadgen_name: str, install: bool) -> None:
    missing = [pkg for pkg, mod in PY_TOOLS.items() if importlib.util.find_spec(mod) is None]
    if missing:
        if not install:
            raise SystemExit(f"missing Python packages {missing}: pip install -e '.[bench]' (make test does)")
        log(f"installing {missing}: the project's bench extra")
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "-e", f"{REPO}[bench]"], check=True)
        importlib.invalidate_caches()
    if shutil.which(loadgen_name) is None:
        if not install:
            raise SystemExit(f"{loadgen_name} is missing: apt-get install {loadgen_name} (make tools does)")
        log(f"installing {loadgen_name} (Debian)")
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", loadgen_name], check=True, env=env)
        if shutil.which(loadgen_name) is None:
            raise SystemExit(f"{loadgen_name} is still not on PATH after apt-get install")


def convert_onnx(path: Path) -> Path:
    target = onnx_file(path)
    source = path / "saved_model.pb"
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.onnx")
    log(f"converting {path} to ONNX with tf2onnx")
    proc = subprocess.run(
        [PYTHON, "-m", "tf2onnx.convert", "--saved-model", str(path), "--signature_def", "serving_default",
         "--opset", "17", "--output", str(tmp)],
        cwd=REPO, env=quiet_env(), capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"tf2onnx failed:\n{proc.stderr[-3000:]}")
    os.replace(tmp, target)
    return target


def import_bento(path: Path) -> str:
    log("importing the SavedModel into BentoML's model store (benchmarks/out/bentoml_home)")
    proc = subprocess.run(
        [PYTHON, "-m", "benchmarks.servers.bentoml_service", "import", str(path)],
        cwd=REPO, env=quiet_env(BENTOML_HOME=str(OUT / "bentoml_home")), capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"BentoML model import failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------- measuring


def run_inprocess(seconds: float, batches: list[int]) -> dict:
    """Each item's best of TensorFlow's two kernel sets: the limit must be the fastest
    honest call, and which set wins depends on the batch size and the thread count
    (single-threaded the plain kernels win everywhere; on two threads oneDNN wins at 256)."""
    argv = [PYTHON, "-m", "benchmarks.inprocess", "--seconds", str(seconds)]
    argv += ["--batches", ",".join(map(str, batches))]
    env = quiet_env()
    runs = []
    for onednn in ("0", "1"):  # TensorFlow reads it at import: one process each
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"in-process scoring failed:\n{proc.stderr[-3000:]}")
        out = json.loads(proc.stdout)
        for r in out["results"]:
            r["onednn"] = onednn == "1"
        runs.append(out)
    best: dict[tuple, dict] = {}
    for r in (r for out in runs for r in out["results"]):
        key = (r["backend"], r["kind"], r["batch"])
        if key not in best or r["calls_per_s"] > best[key]["calls_per_s"]:
            best[key] = r
    return {**runs[0], "results": list(best.values()), "kernel_runs": [out["results"] for out in runs]}


def check_same_model(server: procs.Server, body: Body) -> list[float] | None:
    code, raw = procs.http(server.url(body.path), body=body, timeout=30)
    if code != 200:
        raise RuntimeError(f"{server.spec.name} answered {code} to a valid request: {raw[:300]!r}")
    return mse_of(server.spec.request, raw)


def alone(name: str, spec: procs.ServerSpec, bodies: dict[int, Body], args, log_dir: Path) -> dict:
    """One server started with none of the others running: its start-up and its memory at
    ready and after a short load at the largest batch. PSS splits a page among every process
    that maps it, so with the other servers up (several of them mapping the same TensorFlow
    library) a server's PSS reads low; alone it is what a machine running just it would pay."""
    server = procs.start(spec, log_dir)
    try:
        info = {"startup_seconds": round(server.wait_ready(), 3), "memory_ready": server.memory()}
        body = bodies[max(args.batches)]
        try:
            loadgen.RUNNERS[args.loadgen](server.url(body.path), body, max(args.concurrency), 0.5)
        except loadgen.LoadError as exc:
            info["load_error"] = str(exc)[:300]
        info["memory_loaded"] = server.memory()
        return info
    finally:
        server.stop()


def one_round(i: int, args, specs, bodies, rng, run_dir: Path) -> dict:
    rnd: dict = {"round": i, "servers": {}, "cells": [], "started_at": time.time()}
    log(f"round {i}: TensorFlow-only process")
    rnd["tf_only"] = procs.TfOnlyProbe().measure()
    rnd["inprocess"] = {"results": []}
    if not args.no_inprocess:
        log(f"round {i}: in-process scoring")
        rnd["inprocess"] = run_inprocess(args.inprocess_seconds, args.batches)

    order = list(args.servers)
    rng.shuffle(order)
    solo: dict[str, dict] = {}
    if not args.no_alone:
        for name in order:
            log(f"round {i}: {name} alone (start-up, memory)")
            solo[name] = alone(
                name, specs[name], bodies[specs[name].request], args, run_dir / "logs" / f"round{i}-alone"
            )
    rng.shuffle(order)
    running: dict[str, procs.Server] = {}
    try:
        for name in order:
            log(f"round {i}: starting {name}")
            server = procs.start(specs[name], run_dir / "logs" / f"round{i}")
            running[name] = server
            startup_seconds = server.wait_ready()
            info = {"startup_seconds": round(startup_seconds, 3), "memory_ready": server.memory()}
            mine = bodies[specs[name].request]
            if i == 1:
                info["mse_batch32"] = check_same_model(server, mine[32])
            # warm-up: traces, thread pools, first-call paths of every worker
            try:
                first = mine[min(mine)]
                loadgen.RUNNERS[args.loadgen](
                    server.url(first.path), first, max(args.concurrency), max(0.5, args.warmup * 2)
                )
            except loadgen.LoadError as exc:
                info["warmup_error"] = str(exc)[:300]
            if name in solo:
                info["alone"] = solo[name]
            rnd["servers"][name] = info

        cells = [(b, c) for b in args.batches for c in args.concurrency]
        rng.shuffle(cells)
        for batch, conc in cells:
            names = list(running)
            rng.shuffle(names)
            for name in names:
                server = running[name]
                cell = {"server": name, "batch": batch, "concurrency": conc}
                if not server.alive():
                    cell["error"] = f"server exited ({server.proc.returncode})"
                    rnd["cells"].append(cell)
                    continue
                run = loadgen.RUNNERS[args.loadgen]
                body = bodies[server.spec.request][batch]
                try:
                    if args.warmup > 0:
                        run(server.url(body.path), body, conc, args.warmup)
                    r = run(server.url(body.path), body, conc, args.duration)
                    cell.update(r.as_dict(), beats_per_s=r.rps * batch)
                except (loadgen.LoadError, subprocess.TimeoutExpired) as exc:
                    cell["error"] = str(exc)[:500]
                rnd["cells"].append(cell)
                log(
                    f"round {i} b{batch} c{conc} {name:10s} "
                    + (f"{cell['rps']:8.1f} req/s p50 {cell['p50_ms']:.2f} ms p99 {cell['p99_ms']:.2f} ms"
                       + (f" errors {cell['errors']}" if cell.get("errors") else "")
                       if "rps" in cell else f"ERROR {cell['error'][:120]}")
                )  # fmt: skip
        for name, server in running.items():
            rnd["servers"][name]["memory_loaded"] = server.memory()
            rnd["servers"][name]["alive_at_end"] = server.alive()
    finally:
        for server in running.values():
            server.stop()
    rnd["seconds"] = round(time.time() - rnd["started_at"], 1)
    return rnd


# ---------------------------------------------------------------- entry


def parse_args(argv: list[str] | None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds of load per cell")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds of untimed load before each cell")
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument(
        "--servers", default=None, help=f"default {','.join(DEFAULT_SERVERS)}; any of {ALL_SERVERS}"
    )
    ap.add_argument("--workers", type=int, default=2, help="worker processes of every server")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=BASE;root=DIR;args=...;env=K=V,...",
        help="also run a copy of server BASE (e.g. ours from a patched tree, or with -k gthread)",
    )
    ap.add_argument("--no-inprocess", action="store_true", help="skip the in-process limit (A/B runs)")
    ap.add_argument(
        "--no-alone", action="store_true", help="skip starting each server alone for its memory and start-up"
    )
    ap.add_argument(
        "--with-proposals",
        action="store_true",
        help="gone: the proposals were merged and benchmarks/proposals/ removed (exits with an error)",
    )
    ap.add_argument("--loadgen", choices=sorted(loadgen.RUNNERS), default="hey")
    ap.add_argument("--inprocess-seconds", type=float, default=0.7, help="seconds per in-process item")
    ap.add_argument("--seed", type=int, default=None, help="order shuffling seed (default: random)")
    ap.add_argument(
        "--out-dir", type=Path, default=None, help="raw results and logs (default benchmarks/out/run-*)"
    )
    ap.add_argument(
        "--results", type=Path, default=None, help="the Markdown report (default benchmarks/RESULTS.md)"
    )
    ap.add_argument("--no-install", action="store_true", help="fail instead of installing missing tools")
    ap.add_argument(
        "--smoke", action="store_true", help="tiny run for CI: 1 round, short cells, batch 1 and 32"
    )
    args = ap.parse_args(argv)
    if args.with_proposals:
        ap.error(
            "--with-proposals is gone: the proposals were merged into the serving code and "
            "benchmarks/proposals/ was removed; compare source trees with --variant 'NAME=ours;root=DIR'"
        )
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.inprocess_seconds = 1, 0.5, 0.0, 0.1
        args.batches, args.workers = "1,32", 1
    args.batches = [int(x) for x in str(args.batches).split(",")]
    args.concurrency = [int(x) for x in str(args.concurrency).split(",")]
    default = SMOKE_SERVERS if args.smoke else DEFAULT_SERVERS
    args.servers = [s for s in str(args.servers or ",".join(default)).split(",") if s]
    unknown = set(args.servers) - set(ALL_SERVERS)
    args.servers += [v.split("=", 1)[0].strip() for v in args.variant]
    if unknown:
        ap.error(f"unknown servers {sorted(unknown)}; choose from {ALL_SERVERS}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out_dir = args.out_dir or OUT / f"run-{stamp}{'-smoke' if args.smoke else ''}"
    if args.results is None:
        args.results = args.out_dir / "RESULTS.md" if args.smoke else BENCH / "RESULTS.md"
    args.seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    t0 = time.time()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ensure_tools(args.loadgen, install=not args.no_install)
    path = model_path()
    convert_onnx(path)  # in-process comparison and ours_onnx
    if "bentoml" in args.servers or any(v.split("=", 1)[1].split(";")[0] == "bentoml" for v in args.variant):
        import_bento(path)
    specs = procs.server_specs(args.workers)
    args.peer_versions = {}
    for name in args.servers:
        peer = specs[name].peer if name in specs else None
        if peer:
            peers.ensure(peer, install=not args.no_install, log=log)
            args.peer_versions[peer] = peers.versions(peer)
    for text in args.variant:
        spec = procs.variant(text, specs)
        specs[spec.name] = spec
    bodies: dict[str, dict[int, Body]] = {}  # request kind -> batch -> body
    for kind in {specs[s].request for s in args.servers} | {"predict"}:
        bodies[kind] = {}
        for b in sorted(set(args.batches) | {32}):
            body = request_body(kind, b)
            file = args.out_dir / f"body-{kind}-{b}.{'json' if kind == 'predict' else 'bin'}"
            file.write_bytes(body.data)
            bodies[kind][b] = Body(body.path, body.data, body.content_type, body.headers, file)
    rng = random.Random(args.seed)
    log(
        f"{args.rounds} round(s), {len(args.batches) * len(args.concurrency)} cells x "
        f"{len(args.servers)} servers, {args.duration}s per cell, load by {args.loadgen}, seed {args.seed}"
    )
    rounds = []
    for i in range(1, args.rounds + 1):
        rounds.append(one_round(i, args, specs, bodies, rng, args.out_dir))
        (args.out_dir / "results.json").write_text(
            json.dumps({"config": report.config_dict(args, command), "rounds": rounds}, indent=1)
        )
    data = {
        "config": report.config_dict(args, command),
        "environment": report.environment(args.loadgen),
        "rounds": rounds,
        "wall_seconds": round(time.time() - t0, 1),
    }
    (args.out_dir / "results.json").write_text(json.dumps(data, indent=1))
    text = report.render(data)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    log(f"done in {data['wall_seconds']:.0f}s: {args.results} (raw: {args.out_dir / 'results.json'})")
    failed = [c for r in rounds for c in r["cells"] if "error" in c]
    if failed:
        log(f"{len(failed)} cell(s) failed; see the report")
        return 1
    return 0
