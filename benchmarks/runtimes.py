# ruff: noqa: E501  (long lines of Markdown text)
"""LiteRT or ONNX Runtime: ``python -m benchmarks.runtimes`` writes ``benchmarks/RUNTIMES.md``.

The measurements behind the choice of the portable copy (issue 18, item 1), each in
processes of its own, pinned to one CPU (``--cpu``):

- equality: the version's LiteRT copy (``model.tflite``, what ``ECG_RUNTIME=litert``
  serves) and the tf2onnx conversion against the SavedModel's signature on all 5,000
  ECG5000 beats (both files): max |difference| of MSE, per-point error and
  reconstruction, and whether every beat gets the same flag at the version's threshold;
- speed at batch 1, 32 and 256, and with the batch size alternating 1, 32, 256 on every
  call (LiteRT resizes its input each time): each runtime in its own process, one thread
  each (what a worker of 2 on 2 CPUs gets), rounds interleaved and shuffled, µs per call
  as median and range over rounds, and LiteRT ÷ ONNX paired per round;
- memory and start: a process that imports the runtime and loads the model (then one
  call), against one that imports only numpy and our ``service.runtimes``: PSS and RSS,
  import and load times, and launch to ready;
- wheel sizes: ``pip download`` of each runtime alone and with what it pulls in, and of
  what converting to it needs beyond TensorFlow (tf2onnx and onnx; nothing for LiteRT,
  whose converter is TensorFlow's own);
- conversion robustness: untrained variants of the autoencoder (each activation the
  training config allows, a deeper net, latent 2 and 32) built with
  ``training.model.build_autoencoder`` and exported with
  ``training.export.save_serving_model``, converted by both converters (each in a fresh
  process: the converter's own time and the wall time with TensorFlow's import) and
  checked against the signature.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BENCH, DATA_FILE, OUT, PYTHON, REPO, beat_rows, model_path, quiet_env

RUNTIMES = ("litert", "onnx")
LABEL = {"litert": "LiteRT (ai-edge-litert)", "onnx": "ONNX Runtime"}
BATCHES = (1, 32, 256)
# What each runtime needs installed to serve, and what converting to it needs beyond
# TensorFlow, at the versions the project pins (pyproject.toml).
WHEELS = {
    "litert": ["ai-edge-litert==2.3.0"],
    "onnx": ["onnxruntime==1.32.0"],
}
CONVERTER_WHEELS = {"litert": [], "onnx": ["tf2onnx==1.17.0", "onnx==1.23.2"]}
VARIANTS: dict[str, dict[str, Any]] = {
    **{
        f"activation {a}": {"activation": a}
        for a in ("relu", "elu", "selu", "tanh", "sigmoid", "gelu", "swish")
    },
    "deeper 256-128-64-32": {"hidden_layers": [256, 128, 64, 32]},
    "latent 2": {"latent_size": 2},
    "latent 32": {"latent_size": 32},
}
WORK = OUT / "runtimes"


def log(msg: str) -> None:
    print(f"[runtimes {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def all_beats():
    """All 5,000 ECG5000 beats: the test file's 4,500, then the training file's 500."""
    import numpy as np

    rows = []
    for file in (DATA_FILE, DATA_FILE.with_name("ECG5000_TRAIN.tsv.gz")):
        with gzip.open(file, "rt") as handle:
            rows += [line.split()[1:] for line in handle if line.strip()]
    return np.asarray(rows, dtype=np.float32)


def load_scorer(runtime: str, saved_model: Path, file: Path | None = None, threads: int = 1):
    """The runtime's scorer for a version: its LiteRT copy or its ONNX conversion."""
    if runtime == "litert":
        from service.runtimes import LiteRTScorer

        return LiteRTScorer(file or saved_model / "model.tflite", "serving_default", threads)
    from benchmarks.servers.onnx_predictor import OnnxScorer

    return OnnxScorer(file or saved_model, "serving_default", threads)


def diffs(ref, copy, threshold: float) -> dict:
    import numpy as np

    out: dict[str, Any] = {
        name: float(np.max(np.abs(getattr(ref, name).astype(np.float64) - getattr(copy, name))))
        for name in ("mse", "point_errors", "reconstruction")
    }
    out["same_flags"] = bool(np.array_equal(ref.mse > threshold, copy.mse > threshold))
    return out


# ---------------------------------------------------------------- children (one process each)


def child_equality() -> dict:
    from benchmarks.run import convert_onnx
    from service.artifact import read_metadata
    from service.runtimes import SignatureScorer

    path = model_path()
    meta = read_metadata(path)
    beats = all_beats()
    ref = SignatureScorer(path, meta.signature_name)(beats)
    files = {"litert": path / "model.tflite", "onnx": convert_onnx(path)}
    out: dict[str, Any] = {"beats": len(beats), "threshold": meta.threshold.value, "version": meta.version}
    for rt in RUNTIMES:
        out[rt] = diffs(ref, load_scorer(rt, path, files[rt])(beats), meta.threshold.value)
    return out


def child_speed(runtime: str) -> None:
    """Serve timing requests on stdin, one JSON line each: {"batches": [..], "seconds": s};
    answer µs per call, the batch sizes taken in turn call after call."""
    import numpy as np

    scorer = load_scorer(runtime, model_path())
    arrays = {b: np.asarray(beat_rows(b), dtype=np.float32) for b in BATCHES}
    for b in BATCHES:
        scorer(arrays[b])
    print("ready", flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        cycle = [arrays[b] for b in req["batches"]]
        k = len(cycle)
        calls, end = 0, time.perf_counter() + req["seconds"]
        t0 = time.perf_counter()
        while True:
            scorer(cycle[calls % k])
            calls += 1
            if calls % k == 0 and time.perf_counter() >= end:
                break
        elapsed = time.perf_counter() - t0
        print(json.dumps({"us_per_call": elapsed / calls * 1e6, "calls": calls}), flush=True)


def child_memory(runtime: str) -> None:
    """Import the runtime, load the model, one call; print the times and wait on stdin."""
    t0 = time.perf_counter()
    import numpy as np

    import service.runtimes  # noqa: F401  (both sides import our scorers' module)

    base = time.perf_counter() - t0
    t1 = time.perf_counter()
    if runtime == "litert":
        import ai_edge_litert.interpreter  # noqa: F401
    elif runtime == "onnx":
        import onnxruntime  # noqa: F401
    imported = time.perf_counter() - t1
    t2 = time.perf_counter()
    if runtime != "numpy":
        load_scorer(runtime, model_path())(np.asarray(beat_rows(1), dtype=np.float32))
    loaded = time.perf_counter() - t2
    print(json.dumps({"numpy_and_ours_s": base, "import_s": imported, "load_and_call_s": loaded}), flush=True)
    sys.stdin.read()


def child_build(target: Path) -> dict:
    """Export each untrained variant as a serving SavedModel into ``target/<i>``."""
    import keras

    from service.artifact import read_metadata
    from training.config import TrainingConfig
    from training.export import save_serving_model
    from training.model import build_autoencoder

    scaler = read_metadata(model_path()).scaler
    out = {}
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        keras.utils.set_random_seed(i)
        model = build_autoencoder(TrainingConfig(**overrides))
        save_serving_model(model, scaler, target / str(i))
        out[name] = {"dir": str(target / str(i)), "parameters": int(model.count_params())}
    return out


def child_check(target: Path, names: list[str]) -> dict:
    """Each variant's converted copies against its signature, on all 5,000 beats."""
    from service.artifact import read_metadata
    from service.runtimes import SignatureScorer

    threshold = read_metadata(model_path()).threshold.value
    beats = all_beats()
    out: dict[str, dict] = {}
    for i, name in enumerate(names):
        folder = target / str(i)
        ref = SignatureScorer(folder, "serving_default")(beats)
        out[name] = {}
        for rt, file in (("litert", folder / "model.tflite"), ("onnx", folder / "model.onnx")):
            if not file.is_file():
                continue
            try:
                out[name][rt] = diffs(ref, load_scorer(rt, folder, file)(beats), threshold)
            except Exception as exc:  # a copy that converts but will not run is a finding too
                out[name][rt] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    return out


# One conversion in a fresh process: TensorFlow imported first, then the converter timed
# alone (the last line printed); tf2onnx through its own command line, as run.py converts.
CONVERT = """
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow
runtime, folder, target = sys.argv[1:4]
t0 = time.perf_counter()
if runtime == "litert":
    from pathlib import Path
    from training.portable import convert_litert
    Path(target).write_bytes(convert_litert(Path(folder)))
else:
    from tf2onnx import convert
    sys.argv = ["tf2onnx.convert", "--saved-model", folder, "--signature_def", "serving_default",
                "--opset", "17", "--output", target]
    convert.main()
print(f"converter_seconds {time.perf_counter() - t0}")
"""


def convert(runtime: str, folder: Path, cpu: list[str]) -> dict:
    """One conversion in a fresh process: wall time (TensorFlow's import included) and the
    converter's own time."""
    target = folder / ("model.tflite" if runtime == "litert" else "model.onnx")
    argv = [*cpu, PYTHON, "-c", CONVERT, runtime, str(folder), str(target)]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=quiet_env(), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not target.is_file():
        target.unlink(missing_ok=True)
        return {"ok": False, "seconds": seconds, "error": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    own = [line for line in proc.stdout.splitlines() if line.startswith("converter_seconds ")]
    converter = float(own[-1].split()[1]) if own else None
    return {"ok": True, "seconds": seconds, "converter_seconds": converter, "bytes": target.stat().st_size}


# ---------------------------------------------------------------- the harness


def run_child(args: list[str], cpu: list[str]) -> Any:
    proc = subprocess.run(
        [*cpu, PYTHON, "-m", "benchmarks.runtimes", "--child", *args],
        cwd=REPO, env=quiet_env(), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_speed(rounds: int, seconds: float, cpu: list[str], rng: random.Random) -> dict:
    workers = {}
    for rt in RUNTIMES:
        p = subprocess.Popen(
            [*cpu, PYTHON, "-m", "benchmarks.runtimes", "--child", "speed", rt], cwd=REPO, env=quiet_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert p.stdout is not None and p.stdin is not None
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"the {rt} timing process did not start")
        workers[rt] = p
    cases = {**{str(b): [b] for b in BATCHES}, "alternating 1, 32, 256": list(BATCHES)}
    results: dict[str, dict[str, list[float]]] = {c: {rt: [] for rt in RUNTIMES} for c in cases}
    try:
        for r in range(rounds):
            order = list(cases)
            rng.shuffle(order)
            for case in order:
                rts = list(RUNTIMES)
                rng.shuffle(rts)
                for rt in rts:
                    p = workers[rt]
                    assert p.stdin is not None and p.stdout is not None
                    p.stdin.write(json.dumps({"batches": cases[case], "seconds": seconds}) + "\n")
                    p.stdin.flush()
                    results[case][rt].append(json.loads(p.stdout.readline())["us_per_call"])
            log(f"speed round {r + 1}/{rounds} done")
    finally:
        for p in workers.values():
            assert p.stdin is not None
            p.stdin.close()
            p.wait(30)
    return results


def measure_memory(rounds: int, cpu: list[str], rng: random.Random) -> dict:
    from benchmarks.procs import memory_mb

    kinds = ("numpy", *RUNTIMES)
    out: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(rounds):
        order = list(kinds)
        rng.shuffle(order)
        for kind in order:
            t0 = time.perf_counter()
            p = subprocess.Popen(
                [*cpu, PYTHON, "-m", "benchmarks.runtimes", "--child", "memory", kind], cwd=REPO,
                env=quiet_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert p.stdout is not None and p.stdin is not None
            info = json.loads(p.stdout.readline())
            info["launch_to_ready_s"] = time.perf_counter() - t0
            info["rss_mb"], info["pss_mb"] = memory_mb(p.pid)
            p.stdin.close()
            p.wait(30)
            out[kind].append(info)
    return out


def measure_wheels() -> dict:
    """Download sizes, from the package index through pip, of each runtime and of what it pulls in."""
    out: dict[str, dict] = {}
    groups = {f"{rt} runtime": WHEELS[rt] for rt in RUNTIMES}
    groups.update({f"{rt} conversion": CONVERTER_WHEELS[rt] for rt in RUNTIMES})
    for name, reqs in groups.items():
        if not reqs:
            out[name] = {"alone": [], "with_deps": []}
            continue
        entry: dict[str, list[dict[str, Any]]] = {}
        for mode, extra in (("alone", ["--no-deps"]), ("with_deps", [])):
            with tempfile.TemporaryDirectory() as tmp:
                proc = subprocess.run(
                    [PYTHON, "-m", "pip", "download", "-q", *extra, "-d", tmp, *reqs],
                    capture_output=True, text=True, timeout=900,
                )  # fmt: skip
                if proc.returncode != 0:
                    entry[mode] = [{"file": "pip download failed", "error": proc.stderr[-500:]}]
                    continue
                files = sorted(Path(tmp).iterdir(), key=lambda f: -f.stat().st_size)
                entry[mode] = [{"file": f.name, "bytes": f.stat().st_size} for f in files]
        out[name] = entry
    return out


def installed_size(package_dirs: list[str]) -> float:
    import site

    total = 0
    for root in site.getsitepackages():
        for d in package_dirs:
            for f in Path(root, d).rglob("*"):
                if f.is_file():
                    total += f.stat().st_size
    return total / 2**20


def measure_robustness(cpu: list[str]) -> dict:
    target = WORK / "variants"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    log(f"building {len(VARIANTS)} untrained variants")
    built = run_child(["build", str(target)], cpu)
    tf_import = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [*cpu, PYTHON, "-c", "import tensorflow"], env=quiet_env(), check=True, capture_output=True
        )
        tf_import.append(time.perf_counter() - t0)
    conversions: dict[str, dict] = {}
    for name, info in built.items():
        conversions[name] = {rt: convert(rt, Path(info["dir"]), cpu) for rt in RUNTIMES}
        log(
            f"converted {name}: "
            + ", ".join(f"{rt} {'ok' if c['ok'] else 'FAILED'}" for rt, c in conversions[name].items())
        )
    checks = run_child(["check", str(target), *built], cpu)
    return {
        "variants": built,
        "conversions": conversions,
        "checks": checks,
        "python_import_tensorflow_s": statistics.median(tf_import),
    }


# ---------------------------------------------------------------- the report


def _st(values: list[float], digits: int = 1) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}\u2013{max(values):,.{digits}f})"


def _mib(b: float) -> str:
    return f"{b / 2**20:,.1f}"


def render(data: dict) -> str:
    from benchmarks.report import DELTA, DIV

    env = data["environment"]
    eq, speed, mem = data.get("equality"), data.get("speed"), data.get("memory")
    lines = [
        "# LiteRT or ONNX Runtime: the portable copy, measured\n",
        f"- **Date:** {env['date_utc']}; the run took {data['wall_seconds'] / 60:.1f} min",
        f"- **Command:** `{data['command']}` (from the repository root, with the project's venv)",
        f"- **Machine:** {env['cpu_model']}, {env['cpus']} CPUs, {env['ram_gib']} GiB RAM, hypervisor "
        f"{env['hypervisor']}; {env['os']}, Linux {env['kernel']}. Every measuring process pinned to CPU "
        f"{data['cpu']} (`taskset`); the machine was shared with other jobs, so speeds are medians over "
        "interleaved rounds and the ratios are paired within a round.",
        "- **Versions:** Python {}, ".format(env["python"])
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v != "not installed"),
        f"- **Code:** commit {env['git_commit']}"
        + (f", uncommitted: {', '.join(env['git_dirty'])}" if env["git_dirty"] else ""),
        "- **Model:** the bundled version; LiteRT runs its `model.tflite` (converted by "
        "`tf.lite.TFLiteConverter.from_saved_model`, checked at export), ONNX Runtime the tf2onnx "
        "conversion (opset 17) the serving benchmark makes. One thread each.\n",
    ]
    if eq:
        lines += [
            f"## Equality with the SavedModel's signature, on all {eq['beats']:,} ECG5000 beats\n",
            f"| runtime | max \\|{DELTA} mse\\| | max \\|{DELTA} point error\\| | max \\|{DELTA} reconstruction\\| "
            f"| same flags at {eq['threshold']:.6g} |",
            "|---|---:|---:|---:|---|",
        ]
        for rt in RUNTIMES:
            d = eq[rt]
            lines.append(
                f"| {LABEL[rt]} | {d['mse']:.1e} | {d['point_errors']:.1e} | {d['reconstruction']:.1e} | "
                f"{'yes' if d['same_flags'] else '**no**'} |"
            )
        lines.append("\n(MSE and point errors in the scaled space, reconstruction in raw units.)\n")
    if speed:
        lines += [
            f"## Speed: µs per call, one thread, {data['rounds']} interleaved rounds of {data['seconds']} s\n",
            f"| batch | LiteRT | ONNX Runtime | LiteRT {DIV} ONNX (paired) | LiteRT, ONNX: {DIV} the same sizes one at a time |",
            "|---|---:|---:|---:|---:|",
        ]
        fixed = [c for c in speed if c.isdigit()]
        for case, per in speed.items():
            ratio = [a / b for a, b in zip(per["litert"], per["onnx"], strict=True)]
            resize = "-"
            if not case.isdigit():  # alternating: against the mean of the fixed sizes, same round
                parts = []
                for rt in RUNTIMES:
                    means = [statistics.mean(speed[c][rt][i] for c in fixed) for i in range(len(per[rt]))]
                    parts.append(_st([a / m for a, m in zip(per[rt], means, strict=True)], 2) + "\u00d7")
                resize = ", ".join(parts)
            lines.append(
                f"| {case} | {_st(per['litert'])} | {_st(per['onnx'])} | {_st(ratio, 2)}\u00d7 | {resize} |"
            )
        lines.append(
            "\n*median (min\u2013max)* over rounds; below 1\u00d7, LiteRT takes less time. *alternating*: "
            "each call takes the next of 1, 32 and 256 beats, so that the interpreter resizes its input on "
            "every call (the time is per call, averaged over the three sizes); its last column compares it with "
            "the mean of the three fixed-size rows of the same round: above 1\u00d7 is what changing shape costs.\n"
        )
    if mem:
        lines += [
            f"## Memory and start: one process, model loaded and called once (rounds: {data['rounds_memory']})\n",
            "| process | PSS, MiB | RSS, MiB | import runtime, s | load + first call, s | launch to ready, s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind in ("numpy", *RUNTIMES):
            rs = mem[kind]
            name = "numpy + `service.runtimes`, no runtime" if kind == "numpy" else LABEL[kind]
            lines.append(
                f"| {name} | {_st([r['pss_mb'] for r in rs])} | {_st([r['rss_mb'] for r in rs])} | "
                f"{_st([r['import_s'] for r in rs], 3)} | {_st([r['load_and_call_s'] for r in rs], 3)} | "
                f"{_st([r['launch_to_ready_s'] for r in rs], 2)} |"
            )
        lines.append("")
    wheels = data.get("wheels")
    if wheels:
        lines += [
            "## Wheel sizes (pip download, this platform)\n",
            "| what | the package alone, MiB | with what it pulls in, MiB | files pulled in |",
            "|---|---:|---:|---|",
        ]
        for name, entry in wheels.items():
            alone = sum(f.get("bytes", 0) for f in entry["alone"])
            deps = entry["with_deps"]
            files = ", ".join(f"{f['file'].split('-')[0]} {_mib(f['bytes'])}" for f in deps if "bytes" in f)
            label = name + (" (beyond TensorFlow)" if name.endswith("conversion") else "")
            if not entry["alone"]:
                lines.append(f"| {label} | 0 | 0 | nothing: TensorFlow's own converter |")
            else:
                lines.append(
                    f"| {label} | {_mib(alone)} | {_mib(sum(f.get('bytes', 0) for f in deps))} | {files} |"
                )
        inst = data.get("installed_mib", {})
        if inst:
            lines.append(
                "\nInstalled in this venv: "
                + "; ".join(f"{k} {v:,.1f} MiB" for k, v in inst.items())
                + " (the package folders in site-packages).\n"
            )
        else:
            lines.append("")
    rob = data.get("robustness")
    if rob:
        lines += [
            f"## Conversion robustness: {len(rob['variants'])} untrained variants\n",
            "Each built with `training.model.build_autoencoder`, exported with "
            "`training.export.save_serving_model`, converted by each converter in a fresh process "
            "(*converted, s*: the converter's own time, then in brackets the process's wall time, "
            "TensorFlow's import included; `python -c 'import tensorflow'` alone takes "
            f"{rob['python_import_tensorflow_s']:.1f} s here), then run by its runtime and compared with the "
            "signature on all 5,000 beats.\n",
            f"| variant | parameters | LiteRT: converted, s | max \\|{DELTA} mse\\|, \\|{DELTA} point error\\| | "
            f"ONNX: converted, s | max \\|{DELTA} mse\\|, \\|{DELTA} point error\\| |",
            "|---|---:|---|---|---|---|",
        ]
        for name, info in rob["variants"].items():
            cols = []
            for rt in RUNTIMES:
                c = rob["conversions"][name][rt]
                chk = rob["checks"].get(name, {}).get(rt, {})
                own = c.get("converter_seconds") or 0.0
                conv = f"yes, {own:.1f} ({c['seconds']:.1f})" if c["ok"] else f"**no**: {c['error'][0][:120]}"
                if "error" in chk:
                    err = re.sub(r"Load model from \S+ failed:", "", chk["error"]).replace("|", "/")
                    err = err.split(", Error ")[-1]  # ONNX Runtime's reason, after the node it names
                    res = f"**converted, fails to load**: {err[:200]}"
                elif chk:
                    res = f"{chk['mse']:.1e}, {chk['point_errors']:.1e}" + (
                        "" if chk["same_flags"] else ", **flags differ**"
                    )
                else:
                    res = "-"
                cols += [conv, res]
            lines.append(f"| {name} | {info['parameters']:,} | " + " | ".join(cols) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.runtimes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved speed rounds")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per runtime per case per round")
    ap.add_argument("--memory-rounds", type=int, default=3)
    ap.add_argument("--cpu", default="0", help="the CPU every measuring process is pinned to ('' for none)")
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to leave out: equality,speed,memory,wheels,robustness",
    )
    ap.add_argument("--output", type=Path, default=BENCH / "RUNTIMES.md")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--render", type=Path, default=None, help="only rewrite the report from a results.json")
    args = ap.parse_args(argv)
    if args.render:
        args.output.write_text(render(json.loads(args.render.read_text())))
        return 0
    if args.child:
        kind, *rest = args.child
        if kind == "speed":
            child_speed(rest[0])
        elif kind == "memory":
            child_memory(rest[0])
        else:
            result = {
                "equality": lambda: child_equality(),
                "build": lambda: child_build(Path(rest[0])),
                "check": lambda: child_check(Path(rest[0]), rest[1:]),
            }[kind]()
            print(json.dumps(result))
        return 0

    from benchmarks import report

    t0 = time.time()
    cpu = ["taskset", "-c", args.cpu] if args.cpu else []
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    skip = set(filter(None, args.skip.split(",")))
    command = "python -m benchmarks.runtimes " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    WORK.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"command": command.strip(), "cpu": args.cpu or "any", "seed": seed}
    data.update(rounds=args.rounds, seconds=args.seconds, rounds_memory=args.memory_rounds)
    if "equality" not in skip:
        log("equality on all 5,000 beats")
        data["equality"] = run_child(["equality"], cpu)
    if "speed" not in skip:
        log(f"speed: {args.rounds} rounds")
        data["speed"] = measure_speed(args.rounds, args.seconds, cpu, rng)
    if "memory" not in skip:
        log("memory")
        data["memory"] = measure_memory(args.memory_rounds, cpu, rng)
    if "wheels" not in skip:
        log("wheel sizes (pip download)")
        data["wheels"] = measure_wheels()
        data["installed_mib"] = {
            "ai_edge_litert": installed_size(["ai_edge_litert"]),
            "onnxruntime": installed_size(["onnxruntime"]),
            "tf2onnx + onnx": installed_size(["tf2onnx", "onnx"]),
            "tensorflow": installed_size(["tensorflow"]),
        }
    if "robustness" not in skip:
        data["robustness"] = measure_robustness(cpu)
    data["environment"] = report.environment("hey")
    data["wall_seconds"] = time.time() - t0
    (WORK / "results.json").write_text(json.dumps(data, indent=1))
    args.output.write_text(render(data))
    log(f"wrote {args.output} (raw: {WORK / 'results.json'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
