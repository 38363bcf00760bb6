# ruff: noqa: E501  (long lines of Markdown text)
"""Summaries and the Markdown report (``benchmarks/RESULTS.md``) from the raw rounds.

Every ratio is paired: taken within one round (same cell, seconds apart), then summarised
as the median and range over rounds.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import statistics
import subprocess
from datetime import UTC, datetime

from benchmarks import loadgen
from benchmarks.common import REPO

X = "\u00d7"  # multiplication sign
DIV = "\u00f7"  # division sign
DELTA = "\u0394"
DASH = "\u2013"  # en dash, for ranges
TITLES = {
    "floor": "floor: no-op JSON endpoint, same gunicorn + Flask",
    "ours": "**ours** (TensorFlow SavedModel)",
    "ours_onnx": "ours, ONNX Runtime in place of TensorFlow",
    "ours_v2": "**ours, /v2 binary tensors** (TensorFlow SavedModel)",
    "ours_onnx_v2": "ours, /v2 binary tensors, ONNX Runtime in place of TensorFlow",
    "ours_litert": "**ours, LiteRT runtime** (`ECG_RUNTIME=litert`)",
    "ours_litert_v2": "**ours, /v2 binary tensors, LiteRT runtime**",
    "mlserver": "Seldon MLServer 1.7 (custom runtime, V2 REST, JSON tensors)",
    "kserve": "KServe 0.21 (kserve.Model, V2 REST, JSON tensors)",
    "kserve_v2": "KServe 0.21 (kserve.Model, V2 REST, binary tensors)",
    "naive": "naive: Flask + Keras model.predict",
    "bentoml": "BentoML (bentoml serve, no batching)",
}
PACKAGES = (
    "tensorflow",
    "keras",
    "numpy",
    "flask",
    "werkzeug",
    "gunicorn",
    "orjson",
    "pydantic",
    "prometheus-client",
    "onnxruntime",
    "tf2onnx",
    "onnx",
    "bentoml",
    "ai-edge-litert",
    "uvicorn",
    "starlette",
)


# ---------------------------------------------------------------- environment


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=REPO).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(loadgen_name: str) -> dict:
    """The machine, the software and the code the run measured, for the report's header."""
    lscpu = _run(["lscpu"])

    def field(name: str, default: str = "?") -> str:
        m = re.search(rf"^{re.escape(name)}:\s+(.+)$", lscpu, re.M)
        return m.group(1).strip() if m else default

    with open("/proc/meminfo") as f:
        total = re.search(r"MemTotal:\s+(\d+)", f.read())
        mem_kb = int(total.group(1)) if total else 0
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": field("Model name", platform.processor()),
        "cpus": os.cpu_count(),
        "cores_per_socket": field("Core(s) per socket"),
        "threads_per_core": field("Thread(s) per core"),
        "hypervisor": field("Hypervisor vendor", "none"),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "versions": _package_versions(),
        "loadgen": f"{loadgen_name} {loadgen.tool_version(loadgen_name)} (Debian)",
        "git_commit": _run(["git", "rev-parse", "--short", "HEAD"]),
        "git_dirty": _uncommitted(),
    }


def _package_versions() -> dict[str, str]:
    """The installed version of each package that shapes the numbers ("not installed" if absent)."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def _uncommitted() -> list[str]:
    """Paths with uncommitted changes in the code under test: the commit alone does not say what ran."""
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service", "gunicorn.conf.py", "benchmarks"],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=REPO,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return [line[3:] for line in dirty.splitlines()]


def config_dict(args, command: str) -> dict:
    return {
        "command": command,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "batches": args.batches,
        "concurrency": args.concurrency,
        "servers": args.servers,
        "variants": {v.split("=", 1)[0]: v.split("=", 1)[1].split(";")[0] for v in args.variant},
        "workers": args.workers,
        "loadgen": args.loadgen,
        "inprocess_seconds": args.inprocess_seconds,
        "seed": args.seed,
        "smoke": args.smoke,
        "peer_versions": getattr(args, "peer_versions", {}),
    }


# ---------------------------------------------------------------- statistics


def stats(values: list[float | None]) -> dict | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present), "n": len(present)}


def cell(rnd: dict, server: str, batch: int, conc: int) -> dict | None:
    for c in rnd["cells"]:
        if c["server"] == server and c["batch"] == batch and c["concurrency"] == conc and "rps" in c:
            return c
    return None


def inproc(rnd: dict, backend: str, kind: str, batch: int) -> dict | None:
    for r in rnd.get("inprocess", {}).get("results", []):
        if (r["backend"], r["kind"], r["batch"]) == (backend, kind, batch):
            return r
    return None


def paired(rounds, a: str, b: str, batch: int, conc: int, metric: str = "rps") -> dict | None:
    values = []
    for rnd in rounds:
        x, y = cell(rnd, a, batch, conc), cell(rnd, b, batch, conc)
        if x and y and y[metric]:
            values.append(x[metric] / y[metric])
    return stats(values)


def vs_inprocess(rounds, server: str, batch: int, conc: int, kind: str, backend: str = "tf"):
    values = []
    for rnd in rounds:
        x, y = cell(rnd, server, batch, conc), inproc(rnd, backend, kind, batch)
        if x and y:
            values.append(x["beats_per_s"] / y["beats_per_s"])
    return stats(values)


def worker_rss(rnd: dict, server: str, when: str = "memory_loaded") -> float | None:
    mem = rnd["servers"].get(server, {}).get(when)
    return max(mem["worker_rss_mb"]) if mem and mem["worker_rss_mb"] else None


def rss_ratio(rounds, server: str) -> dict | None:
    values = []
    for rnd in rounds:
        w, t = worker_rss(rnd, server), rnd.get("tf_only", {}).get("rss_mb")
        if w and t:
            values.append(w / t)
    return stats(values)


OURS = ("ours", "ours_v2")  # our server with TensorFlow: /predict (JSON) and /v2 (binary tensors)
SLIM = ("ours_litert", "ours_litert_v2")  # the same with ECG_RUNTIME=litert: the slim runtime
RUNTIME_LABEL = {"litert": "LiteRT", "onnx": "ONNX Runtime"}


def base_of(cfg: dict, server: str) -> str:
    return cfg.get("variants", {}).get(server, server)


def twin(cfg: dict, server: str, runtime: str = "litert") -> str | None:
    """The run of the same server and API as ``server`` on another runtime
    (ours_v2 -> ours_litert_v2 or ours_onnx_v2), if this run has it."""
    name = server.replace("ours", f"ours_{runtime}", 1)
    return name if name in cfg["servers"] and base_of(cfg, name).startswith(f"ours_{runtime}") else None


def own_path(cfg: dict, server: str) -> tuple[str, str]:
    """The in-process (backend, kind) that does what ``server`` does between its input and output."""
    base = base_of(cfg, server)
    kind = "v2path" if base.endswith("_v2") else "path"
    backend = next((r for r in RUNTIME_LABEL if base.startswith(f"ours_{r}")), "tf")
    return backend, kind


# ---------------------------------------------------------------- formatting


def _f(x: float | None, digits: int | None = None) -> str:
    if x is None:
        return "-"
    if digits is None:
        digits = 0 if abs(x) >= 10 else (1 if abs(x) >= 1 else 2)
    return f"{x:,.{digits}f}"


def _s(st: dict | None, digits: int | None = None) -> str:
    if not st:
        return "-"
    if st["n"] == 1:
        return _f(st["median"], digits)
    return f"{_f(st['median'], digits)} ({_f(st['min'], digits)}{DASH}{_f(st['max'], digits)})"


def _r(st: dict | None) -> str:
    if not st:
        return "-"
    if st["n"] == 1:
        return f"{st['median']:.2f}{X}"
    return f"{st['median']:.2f}{X} ({st['min']:.2f}{DASH}{st['max']:.2f})"


def title(server: str) -> str:
    return TITLES.get(server, server)


# ---------------------------------------------------------------- targets


def target_rows(data: dict) -> list[dict]:
    """Issue 6's targets, each as (name, bound, a function of the server under test); a
    yardstick's targets only when the run has that yardstick."""
    cfg, rounds = data["config"], data["rounds"]
    servers, concs, batches = cfg["servers"], cfg["concurrency"], cfg["batches"]
    rows = []
    if "floor" in servers and 1 in batches:
        rows += _floor_targets(rounds, concs)
    if "naive" in servers and 1 in batches:
        rows += _naive_targets(rounds, concs)
    if "bentoml" in servers:
        rows += _bentoml_targets(rounds, batches, concs)
    for peer, names in PEERS.items():
        present = [n for n in names if n in servers]
        if present:
            rows += _peer_targets(rounds, peer, present, batches, concs)
    big = max(batches)
    if any(inproc(r, "tf", "signature", big) for r in rounds):
        rows += _inprocess_targets(rounds, big, concs)
    rows.append(
        _target(
            f"RSS per worker {DIV} a TensorFlow-only process's", "<=", 1.1, lambda s: rss_ratio(rounds, s)
        )
    )
    return rows


def _target(name: str, op: str, bound: float, fn, http_cell: tuple[int, int, str] | None = None) -> dict:
    """One target row. ``http_cell``: (batch, concurrency, metric) of the HTTP cell the target
    reads, so that a miss can be checked against ONNX Runtime in the same path, round by round."""
    return {"name": name, "op": op, "bound": bound, "fn": fn, "cell": http_cell}


def _floor_targets(rounds: list[dict], concs: list[int]) -> list[dict]:
    """Close to the no-op floor at batch 1: at least half its req/s, at most twice its p99."""
    rps = [
        _target(
            f"b1 c{c}: req/s {DIV} the no-op floor's",
            ">=",
            0.5,
            lambda s, c=c: paired(rounds, s, "floor", 1, c),
            (1, c, "rps"),
        )
        for c in concs
    ]
    p99 = [
        _target(
            f"b1 c{c}: p99 {DIV} the floor's p99",
            "<=",
            2.0,
            lambda s, c=c: paired(rounds, s, "floor", 1, c, "p99_ms"),
            (1, c, "p99_ms"),
        )
        for c in concs
    ]
    return rps + p99


def _naive_targets(rounds: list[dict], concs: list[int]) -> list[dict]:
    """Far ahead of the naive Flask + Keras server at batch 1: at least 30 times its req/s."""
    return [
        _target(
            f"b1 c{c}: req/s {DIV} the naive server's",
            ">=",
            30,
            lambda s, c=c: paired(rounds, s, "naive", 1, c),
            (1, c, "rps"),
        )
        for c in concs
    ]


def _bentoml_targets(rounds: list[dict], batches: list[int], concs: list[int]) -> list[dict]:
    """Ahead of BentoML in every cell: at least 3 times its req/s."""
    return [
        _target(
            f"b{b} c{c}: req/s {DIV} BentoML's",
            ">=",
            3,
            lambda s, b=b, c=c: paired(rounds, s, "bentoml", b, c),
            (b, c, "rps"),
        )
        for b in batches
        for c in concs
    ]


# issue 18: 3x each peer's req/s at batch 1 and 5x at 256, over the peer's best protocol
PEERS = {"MLServer": ("mlserver",), "KServe": ("kserve", "kserve_v2")}


def paired_best(rounds, a: str, others: list[str], batch: int, conc: int) -> dict | None:
    """``a``'s req/s over the best of ``others``' in the same round (a peer's best protocol)."""
    values = []
    for rnd in rounds:
        x = cell(rnd, a, batch, conc)
        best = max((c["rps"] for o in others if (c := cell(rnd, o, batch, conc))), default=None)
        if x and best:
            values.append(x["rps"] / best)
    return stats(values)


def _peer_targets(
    rounds: list[dict], peer: str, names: list[str], batches: list[int], concs: list[int]
) -> list[dict]:
    """Ahead of another model server (issue 18): 3 times its req/s at batch 1, 5 times at 256,
    against whichever of its protocols did best in that round."""
    bounds = {1: 3.0, 256: 5.0}
    best = " (best of V2 JSON and binary)" if len(names) > 1 else ""
    return [
        _target(
            f"b{b} c{c}: req/s {DIV} {peer}'s{best}",
            ">=",
            bounds[b],
            lambda s, b=b, c=c: paired_best(rounds, s, names, b, c),
            (b, c, "rps"),
        )
        for b in batches
        if b in bounds
        for c in concs
    ]


def _inprocess_targets(rounds: list[dict], big: int, concs: list[int]) -> list[dict]:
    """Near the limit at the largest batch: at least a quarter of the in-process signature's beats/s."""
    return [
        _target(
            f"b{big} c{c}: beats/s {DIV} in-process signature's",
            ">=",
            0.25,
            lambda s, c=c: vs_inprocess(rounds, s, big, c, "signature"),
            (big, c, "rps"),
        )
        for c in concs
    ]


def _met(st: dict | None, op: str, bound: float) -> bool | None:
    if not st:
        return None
    return st["median"] >= bound if op == ">=" else st["median"] <= bound


def targets(data: dict, server: str) -> list[dict]:
    out = []
    for row in target_rows(data):
        st = row["fn"](server)
        out.append(
            {
                "name": row["name"],
                "bound": f"{row['op']} {row['bound']:g}{X}",
                "value": _r(st),
                "met": _met(st, row["op"], row["bound"]),
                "stats": st,
            }
        )
    return out


# ---------------------------------------------------------------- rendering

_INPROCESS_ITEMS = (  # (backend, kind), in the order of the in-process table
    ("tf", "signature"),
    ("litert", "signature"),
    ("onnx", "signature"),
    ("tf", "scorer"),
    ("tf", "path"),
    ("litert", "path"),
    ("onnx", "path"),
    ("tf", "v2path"),
    ("litert", "v2path"),
    ("onnx", "v2path"),
)


def render(data: dict) -> str:
    """The whole Markdown report: each section's lines, in order."""
    ours_like = [s for s in data["config"]["servers"] if base_of(data["config"], s) in OURS + SLIM]
    sections = (
        _header(data),
        _run_setup(data),
        _slim_targets_section(data),
        _targets_section(data, ours_like),
        _http_table(data),
        _paired_ratios(data, ours_like),
        _inprocess_section(data, ours_like),
        _tf_tax_section(data, ours_like),
        _memory_section(data),
        _same_model_section(data),
        _failed_cells_section(data),
    )
    return "\n".join(line for section in sections for line in section) + "\n"


def _header(data: dict) -> list[str]:
    """The title, and a warning up front when the numbers come from a smoke run."""
    lines = ["# Serving benchmark: the ECG autoencoder, side by side\n"]
    if data["config"].get("smoke"):
        lines.append(
            "> **Smoke run** (`--smoke`): one round of half-second cells, one worker per server. It checks "
            "that the harness works; its numbers mean nothing.\n"
        )
    return lines


def _run_setup(data: dict) -> list[str]:
    """How the numbers were taken (date, command, machine, versions, load, code, beats), so a reader
    can judge them and rerun the benchmark."""
    cfg, env = data["config"], data.get("environment", {})
    vers = env.get("versions", {})
    dirty = env.get("git_dirty")
    lines = [
        f"- **Date:** {env.get('date_utc', '?')}; the run took {data.get('wall_seconds', 0) / 60:.1f} min",
        f"- **Command:** `{cfg['command'].strip()}` (from the repository root, with the project's venv)",
        f"- **Machine:** {env.get('cpu_model')}, {env.get('cpus')} CPUs ({env.get('cores_per_socket')} cores, "
        f"{env.get('threads_per_core')} thread each), {env.get('ram_gib')} GiB RAM, hypervisor "
        f"{env.get('hypervisor')}; {env.get('os')}, Linux {env.get('kernel')}. Shared and noisy: other jobs ran "
        "on it during the run, which is why every number is a median over interleaved rounds and every ratio "
        "is paired within a round.",
        f"- **Versions:** Python {env.get('python')}, " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        *(
            f"- **{peer}**'s own venv (`benchmarks/out/venvs/{peer}`): "
            + ", ".join(f"{k} {v}" for k, v in pv.items() if v != "not installed")
            for peer, pv in cfg.get("peer_versions", {}).items()
        ),
        f"- **Load:** {env.get('loadgen')}: closed loop, `-c` = concurrency, {cfg['duration_s']} s per cell "
        f"after {cfg['warmup_s']} s of untimed load; latency from hey's per-request CSV (0.1 ms resolution, "
        f"connection set-up included). {cfg['rounds']} round(s); in each, cells in a shuffled order and, within "
        f"a cell, servers in a shuffled order (seed {cfg['seed']}). Every server: {cfg['workers']} worker "
        "process(es) on 127.0.0.1; gunicorn servers use the repository's `gunicorn.conf.py`. Every "
        "TensorFlow server (ours and the peers) runs TensorFlow's plain kernels "
        "(`TF_ENABLE_ONEDNN_OPTS=0`, what our server picks for one intra-op thread per worker); the "
        "in-process limit keeps the faster of the plain and the oneDNN kernels (see there).",
        f"- **Code:** commit {env.get('git_commit')}"
        + (f", with uncommitted changes in {', '.join(dirty)}" if dirty else ""),
    ]
    lines += [
        "- **Beats:** the first 1, 32 and 256 beats of `data/ECG5000_TEST.tsv.gz`, as JSON bodies that carry "
        "the file's own decimal strings (the `/v2 binary` servers: the same beats as float32 in the Open "
        "Inference Protocol's binary tensor extension, asking for the same four outputs as `/predict`, also "
        "binary; the V2 JSON peers: the same beats as flat FP32 JSON tensor data, the file's decimal strings, "
        "asking for the same four outputs; the no-op floor always gets the JSON body); every server scores the same SavedModel version "
        "(*Same model* below).",
        f"- Cells read *median (min{DASH}max)* over rounds. See `benchmarks/NOTES.md` for the profiles and the "
        "A/B runs behind the serving code's choices.\n",
    ]
    return lines


def _slim_rows(data: dict, tf_name: str, slim: str) -> list[tuple[str, str, str, str, bool | None]]:
    """Issue 18's targets for the slim runtime ``slim`` next to the TensorFlow runtime
    ``tf_name`` (same server, same API): (target, bound, slim's value, TF's value, met)."""
    cfg, rounds = data["config"], data["rounds"]
    workers = cfg["workers"]

    def per_round(server: str, fn) -> dict | None:
        # the server started alone when the run did that (what a machine running only it pays)
        return stats(
            [fn(r["servers"].get(server, {}).get("alone") or r["servers"].get(server, {})) for r in rounds]
        )

    def pss(info: dict) -> float | None:
        return (info.get("memory_loaded") or {}).get("total_pss_mb")

    where = " (alone)" if any(r["servers"].get(slim, {}).get("alone") for r in rounds) else ""
    rows = []
    for name, op, bound, fn, fmt in (
        (f"{workers} worker(s): total PSS after load{where}, MiB", "<=", 200.0, pss, None),
        (f"start to every worker ready{where}, s", "<=", 1.0, lambda i: i.get("startup_seconds"), 2),
    ):
        mine, theirs = per_round(slim, fn), per_round(tf_name, fn)
        rows.append((name, f"{op} {bound:g}", _s(mine, fmt), _s(theirs, fmt), _met(mine, op, bound)))
    for b in cfg["batches"]:
        for c in cfg["concurrency"]:
            ratio = paired(rounds, slim, tf_name, b, c)
            rows.append(
                (
                    f"b{b} c{c}: req/s {DIV} TensorFlow runtime's",
                    f">= 1{X}",
                    _r(ratio),
                    "-",
                    _met(ratio, ">=", 1.0),
                )
            )
    if "floor" in cfg["servers"] and 1 in cfg["batches"] and 1 in cfg["concurrency"]:
        for metric, what, op, bound in (("rps", "req/s", ">=", 0.75), ("p99_ms", "p99", "<=", 1.5)):
            mine = paired(rounds, slim, "floor", 1, 1, metric)
            theirs = paired(rounds, tf_name, "floor", 1, 1, metric)
            rows.append(
                (
                    f"b1 c1: {what} {DIV} the no-op floor's",
                    f"{op} {bound:g}{X}",
                    _r(mine),
                    _r(theirs),
                    _met(mine, op, bound),
                )
            )
    return rows


def _slim_targets_section(data: dict) -> list[str]:
    """Issue 18's targets: the slim runtime (LiteRT) against the TensorFlow runtime, same
    server and API, in this run. Nothing when the run lacks either."""
    cfg = data["config"]
    pairs = [(t, s) for t in OURS if t in cfg["servers"] and (s := twin(cfg, t, "litert"))]
    if not pairs:
        return []
    lines = [
        "## Targets (issue 18): the slim runtime (`ECG_RUNTIME=litert`) against the TensorFlow runtime\n",
        "Same server, same API, same run; ratios paired per round, *median (min"
        + DASH
        + "max)*. *met* reads "
        "the median. The image-size target (slim image "
        + "\u2264"
        + " 35 % of the TensorFlow image) is measured by "
        "`make container-test`, not here.\n",
    ]
    if cfg["workers"] != 2:
        lines.append(f"The memory bound is for 2 workers; this run had {cfg['workers']}.\n")
    for tf_name, slim in pairs:
        lines += [
            f"{title(slim)} vs {title(tf_name)}:\n",
            "| target | bound | LiteRT runtime | met | TensorFlow runtime |",
            "|---|---|---:|---|---:|",
        ]
        for name, bound, mine, theirs, met in _slim_rows(data, tf_name, slim):
            verdict_text = "-" if met is None else ("**yes**" if met else "**no**")
            lines.append(f"| {name} | {bound} | {mine} | {verdict_text} | {theirs} |")
        lines.append("")
    return lines


def _targets_section(data: dict, ours_like: list[str]) -> list[str]:
    """Issue 6's targets side by side for each of our servers, met or not, then the verdict
    on each miss. Nothing when the run has none of our servers."""
    if not ours_like:
        return []
    lines = [
        "## Targets (issues 6 and 18: the floor, the peers, the limit), from this run\n",
        "| target | bound | " + " | ".join(f"{title(s)} | met" for s in ours_like) + " |",
        "|---|---|" + "---|---|" * len(ours_like),
    ]
    per = {s: targets(data, s) for s in ours_like}
    for i, row in enumerate(per[ours_like[0]]):
        cells = []
        for s in ours_like:
            t = per[s][i]
            met = "-" if t["met"] is None else ("**yes**" if t["met"] else "**no**")
            cells.append(f"{t['value']} | {met}")
        lines.append(f"| {row['name']} | {row['bound']} | " + " | ".join(cells) + " |")
    lines += ["", verdict(data, ours_like)]
    return lines


def _http_table(data: dict) -> list[str]:
    """The raw numbers over HTTP: every server in every (batch, concurrency) cell."""
    cfg, rounds = data["config"], data["rounds"]
    lines = [
        "## Over HTTP\n",
        "req/s; beats/s = req/s " + X + " batch; latency in ms.\n",
        "| server | batch | conc. | req/s | beats/s | p50 ms | p99 ms | non-200 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in cfg["servers"]:
        for b in cfg["batches"]:
            for c in cfg["concurrency"]:
                lines.append(_http_row(rounds, s, b, c))
    lines.append("")
    return lines


def _http_row(rounds: list[dict], server: str, batch: int, conc: int) -> str:
    """One server in one cell, over the rounds it finished; the rounds in which it failed are
    counted next to its non-200 answers, so that a median over fewer rounds shows."""
    ok = [x for x in (cell(r, server, batch, conc) for r in rounds) if x]
    st = {m: stats([x[m] for x in ok]) for m in ("rps", "beats_per_s", "p50_ms", "p99_ms")}
    errors = sum(x.get("errors", 0) for x in ok)
    failed = len(rounds) - len(ok)
    err = f"{errors}" + (f" ({failed} runs failed)" if failed else "")
    return (
        f"| {title(server)} | {batch} | {conc} | {_s(st['rps'])} | {_s(st['beats_per_s'])} | "
        f"{_s(st['p50_ms'], 1)} | {_s(st['p99_ms'], 1)} | {err} |"
    )


def _paired_ratios(data: dict, ours_like: list[str]) -> list[str]:
    """One table per server of ours: its req/s over every other server's, paired within a
    round. A pair of our own servers appears once, in the table of the first of the two."""
    servers = data["config"]["servers"]
    lines = []
    for s in ours_like:
        others = [o for o in servers if o != s and o not in ours_like[: ours_like.index(s)]]
        if others:
            lines += _paired_ratio_table(data, s, others)
    return lines


def _paired_ratio_table(data: dict, server: str, others: list[str]) -> list[str]:
    """``server``'s req/s over each of ``others``' in every cell, then its p99 over the floor's."""
    cfg, rounds = data["config"], data["rounds"]
    batches, concs = cfg["batches"], cfg["concurrency"]
    lines = [
        f"### Paired ratios: req/s of {title(server)} {DIV} the other's, per round\n",
        "| batch | conc. | " + " | ".join(f"{DIV} {o}" for o in others) + " |",
        "|---:|---:|" + "---:|" * len(others),
    ]
    for b in batches:
        for c in concs:
            lines.append(
                f"| {b} | {c} | " + " | ".join(_r(paired(rounds, server, o, b, c)) for o in others) + " |"
            )
    if "floor" in cfg["servers"]:
        p99 = (
            f"b{b} c{c} {_r(paired(rounds, server, 'floor', b, c, 'p99_ms'))}" for b in batches for c in concs
        )
        lines += ["", f"p99 {DIV} the floor's p99: " + "; ".join(p99)]
    lines.append("")
    return lines


def _inprocess_section(data: dict, ours_like: list[str]) -> list[str]:
    """The limit: what scoring costs with no HTTP and one caller, and how much of it each server
    of ours delivers over HTTP. Nothing when the run skipped the in-process items."""
    rounds = data["rounds"]
    if not any(rnd.get("inprocess", {}).get("results") for rnd in rounds):
        return []
    return [
        "## The limit: in-process scoring, one caller, no HTTP\n",
        "- `tf signature`: the SavedModel's serving signature called directly, the canonical way "
        "(`tf.saved_model.load(path).signatures['serving_default'](beats=...)`, outputs to numpy).\n"
        "- `litert signature`: the version's LiteRT copy (`model.tflite`, TensorFlow's own converter, checked "
        "at export), one call of `ai-edge-litert`'s signature runner: `service.runtimes.LiteRTScorer`, what "
        "`ECG_RUNTIME=litert` serves.\n"
        "- `onnx signature`: the same model converted by tf2onnx, one ONNX Runtime session run (a reference: "
        "the project chose LiteRT, `benchmarks/RUNTIMES.md`).\n"
        "- `tf scorer`: the source tree's own `service.runtimes.SignatureScorer`.\n"
        "- `path`: the whole request path without HTTP, JSON bytes in, JSON bytes out: "
        "`parse_predict_request` + `Predictor.predict` + `encode_predict_response`, with TensorFlow, "
        "LiteRT or ONNX Runtime inside the predictor.\n"
        "- `v2path`: the same for `/v2/models/<name>/infer` with binary tensors in and out: "
        "`parse_infer_request` + `Predictor.predict` + `encode_infer_response`.\n"
        "- Thread pools at their defaults (TensorFlow and ONNX Runtime: both CPUs; LiteRT: the one thread "
        "`ECG_RUNTIME=litert` gives it by default).\n"
        "- Each round runs every item twice, in a process with TensorFlow's oneDNN kernels and in one "
        "with its plain kernels (`TF_ENABLE_ONEDNN_OPTS`), and keeps the faster: the limit is the best "
        "call either set makes. *oneDNN* counts the rounds in which oneDNN won. The setting does not "
        "touch LiteRT or ONNX Runtime, whose rows are simply the better of the two runs.\n",
        *_inprocess_table(data),
        *_same_scores(rounds),
        *_http_share_of_inprocess(data, ours_like),
    ]


def _inprocess_table(data: dict) -> list[str]:
    """Every in-process item at every batch size that was measured."""
    rounds, batches = data["rounds"], data["config"]["batches"]
    lines = [
        "| backend | what | batch | calls/s | beats/s | p50 ms | p99 ms | oneDNN |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, kind in _INPROCESS_ITEMS:
        for b in batches:
            row = _inprocess_row(rounds, backend, kind, b)
            if row is not None:
                lines.append(row)
    lines.append("")
    return lines


def _inprocess_row(rounds: list[dict], backend: str, kind: str, batch: int) -> str | None:
    """One in-process item over the rounds that measured it (None if none did); for TensorFlow,
    also in how many of them the oneDNN kernels were the faster set."""
    rs = [x for x in (inproc(r, backend, kind, batch) for r in rounds) if x]
    if not rs:
        return None
    st = {m: stats([x[m] for x in rs]) for m in ("calls_per_s", "beats_per_s", "p50_ms", "p99_ms")}
    onednn = f"{sum(bool(x.get('onednn')) for x in rs)}/{len(rs)} |" if backend == "tf" else "- |"
    return (
        f"| {backend} | {kind} | {batch} | {_s(st['calls_per_s'])} | {_s(st['beats_per_s'])} | "
        f"{_s(st['p50_ms'], 3)} | {_s(st['p99_ms'], 3)} | " + onednn
    )


def _same_scores(rounds: list[dict]) -> list[str]:
    """Evidence that the in-process backends compared score alike (first round's check), so
    that their speeds compare the same work."""
    inp = rounds[0].get("inprocess", {}) if rounds else {}
    parts = []
    for key, label in (("litert_vs_tf", "LiteRT"), ("onnx_vs_tf", "ONNX Runtime")):
        chk = inp.get(key)
        if chk:
            parts.append(
                f"{label} vs the eager signature: max |{DELTA}mse| {chk['max_abs_diff_mse']:.1e}, max "
                f"|{DELTA}point error| {chk['max_abs_diff_point_errors']:.1e}, same anomaly flags: {chk['same_flags']}"
            )
    chk = inp.get("onnx_vs_tf")
    if not chk:
        return []
    parts.append(
        f"the repository's TensorFlow scorer vs the eager signature: max |{DELTA}mse| "
        f"{chk['scorer_vs_eager_max_abs_diff_mse']:.1e}"
    )
    return [f"Same scores, on {chk['beats_compared']} beats: " + "; ".join(parts) + ".", ""]


def _http_share_of_inprocess(data: dict, ours_like: list[str]) -> list[str]:
    """For each server of ours, its beats/s over HTTP as a share of the limit, both the canonical
    signature call and its own request path without HTTP: what HTTP and serving cost."""
    cfg, rounds = data["config"], data["rounds"]
    lines = []
    for s in ours_like:
        backend, kind = own_path(cfg, s)
        lines += [
            f"{title(s)} over HTTP as a share of in-process beats/s (paired per round):\n",
            f"| batch | conc. | {DIV} tf signature | {DIV} its own in-process path |",
            "|---:|---:|---:|---:|",
        ]
        for b in cfg["batches"]:
            for c in cfg["concurrency"]:
                lines.append(
                    f"| {b} | {c} | {_r(vs_inprocess(rounds, s, b, c, 'signature'))} | "
                    f"{_r(vs_inprocess(rounds, s, b, c, kind, backend))} |"
                )
        lines.append("")
    return lines


def _tf_tax_section(data: dict, ours_like: list[str]) -> list[str]:
    """What TensorFlow itself costs: each TensorFlow server of ours next to its twins on the
    other runtimes (same code, same API), over HTTP and in-process. Nothing without a twin."""
    cfg = data["config"]
    pairs = [
        (s, t, rt)
        for s in ours_like
        if base_of(cfg, s) in OURS
        for rt in RUNTIME_LABEL
        if (t := twin(cfg, s, rt))
    ]
    if not pairs:
        return []
    lines = ["## The TensorFlow tax: the same model on the other runtimes, inside our own path\n"]
    for tf_name, other, rt in pairs:
        lines += _tf_tax_table(data, tf_name, other, rt)
    for rt in RUNTIME_LABEL:
        lines += _inprocess_over_tf(data, rt)
    return lines


def _tf_tax_table(data: dict, tf_name: str, ox: str, runtime: str) -> list[str]:
    """``tf_name`` vs its twin ``ox`` on ``runtime`` in every cell: req/s, their ratio, and
    each one's req/s and p99 against the no-op floor (``-`` without a floor)."""
    cfg, rounds = data["config"], data["rounds"]
    fl = "floor" in cfg["servers"]
    rt = RUNTIME_LABEL[runtime]
    lines = [
        f"{title(tf_name)} vs {title(ox)}:\n",
        f"| batch | conc. | TF req/s | {rt} req/s | {rt} {DIV} TF | TF {DIV} floor | {rt} {DIV} floor | "
        f"p99 TF {DIV} floor | p99 {rt} {DIV} floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in cfg["batches"]:
        for c in cfg["concurrency"]:
            rps_tf = stats([(cell(r, tf_name, b, c) or {}).get("rps") for r in rounds])
            rps_ox = stats([(cell(r, ox, b, c) or {}).get("rps") for r in rounds])
            cols = [_s(rps_tf), _s(rps_ox), _r(paired(rounds, ox, tf_name, b, c))]
            if fl:
                cols += [
                    _r(paired(rounds, tf_name, "floor", b, c)),
                    _r(paired(rounds, ox, "floor", b, c)),
                    _r(paired(rounds, tf_name, "floor", b, c, "p99_ms")),
                    _r(paired(rounds, ox, "floor", b, c, "p99_ms")),
                ]
            else:
                cols += ["-"] * 4
            lines.append(f"| {b} | {c} | " + " | ".join(cols) + " |")
    lines.append("")
    return lines


def _inprocess_over_tf(data: dict, runtime: str) -> list[str]:
    """The same comparison without HTTP: ``runtime``'s calls/s over TensorFlow's, for the bare
    signature and for the whole path, paired per round."""
    rounds, batches = data["rounds"], data["config"]["batches"]
    tree_parts = []
    for kind in ("signature", "path"):
        for b in batches:
            vals = []
            for r in rounds:
                x, y = inproc(r, runtime, kind, b), inproc(r, "tf", kind, b)
                if x and y:
                    vals.append(x["calls_per_s"] / y["calls_per_s"])
            tree_parts.append(f"{kind} b{b} {_r(stats(vals))}")
    if not any(inproc(r, runtime, "signature", batches[0]) for r in rounds):
        return []
    return [
        f"In-process, {RUNTIME_LABEL[runtime]} {DIV} TensorFlow calls/s (paired): " + "; ".join(tree_parts),
        "",
    ]


def _memory_section(data: dict) -> list[str]:
    """What each server costs in memory and start-up time, next to a process that does nothing
    but import TensorFlow (the yardstick of the RSS target)."""
    rounds = data["rounds"]
    tf_only = stats([r.get("tf_only", {}).get("rss_mb") for r in rounds])
    imp = stats([r.get("tf_only", {}).get("import_seconds") for r in rounds])
    lines = [
        "## Memory and start-up\n",
        f"A process that only runs `import tensorflow`: RSS {_s(tf_only)} MiB; the import takes {_s(imp, 1)} s.\n",
        "| server | start to all workers ready, s | RSS per worker at ready, MiB | RSS per worker after load, MiB "
        "| total RSS after load, MiB | total PSS after load, MiB | processes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_memory_row(rounds, s) for s in data["config"]["servers"]]
    if any(r["servers"].get(s, {}).get("alone") for r in rounds for s in data["config"]["servers"]):
        lines += [
            "\nEach server alone, before the load phase of the same round (none of the others running, "
            "so no page is shared with another server; memory after 0.5 s of load at the largest batch):\n",
            "| server | start to all workers ready, s | total PSS at ready, MiB | total PSS after load, MiB "
            "| total RSS after load, MiB | processes |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [_alone_row(rounds, s) for s in data["config"]["servers"]]
    lines.append(
        "\nStart: from launching the server to every worker answering with its model loaded and warmed. "
        "RSS per worker: the largest worker's. Total: every process of the server (gunicorn's master and "
        "workers; BentoML's supervisor and workers; MLServer's and KServe's parent process, their spawned "
        "workers and multiprocessing's resource tracker). PSS shares each page among the processes that map it, "
        "so the totals do not count shared library pages twice; in the first table the servers run side by "
        "side, and a page that several servers map (TensorFlow's library, for every TensorFlow server of the "
        "project's venv) is split among them too, so that table reads low for them: the *alone* table is the "
        "cost of running one.\n"
    )
    return lines


def _memory_row(rounds: list[dict], server: str) -> str:
    """One server's start-up time and memory, at ready and after the load, over rounds."""
    su = stats([r["servers"].get(server, {}).get("startup_seconds") for r in rounds])
    wr = stats([worker_rss(r, server, "memory_ready") for r in rounds])
    wl = stats([worker_rss(r, server) for r in rounds])
    loaded = [r["servers"].get(server, {}).get("memory_loaded", {}) for r in rounds]
    tr = stats([m.get("total_rss_mb") for m in loaded])
    tp = stats([m.get("total_pss_mb") for m in loaded])
    pr = stats([m.get("processes") for m in loaded])
    return f"| {title(server)} | {_s(su, 1)} | {_s(wr)} | {_s(wl)} | {_s(tr)} | {_s(tp)} | {_s(pr)} |"


def _alone_row(rounds: list[dict], server: str) -> str:
    """One server started alone: start-up and memory, over rounds."""
    solo = [r["servers"].get(server, {}).get("alone") or {} for r in rounds]
    su = stats([a.get("startup_seconds") for a in solo])
    pr = stats([(a.get("memory_ready") or {}).get("total_pss_mb") for a in solo])
    pl = stats([(a.get("memory_loaded") or {}).get("total_pss_mb") for a in solo])
    rl = stats([(a.get("memory_loaded") or {}).get("total_rss_mb") for a in solo])
    n = stats([(a.get("memory_loaded") or {}).get("processes") for a in solo])
    return f"| {title(server)} | {_s(su, 1)} | {_s(pr)} | {_s(pl)} | {_s(rl)} | {_s(n)} |"


def _same_model_section(data: dict) -> list[str]:
    """That every server scores with the same model: how far its MSEs of the same 32 beats are
    from ours (first round). Nothing when ours did not report them."""
    cfg, rounds = data["config"], data["rounds"]
    ref = rounds[0]["servers"].get("ours", {}).get("mse_batch32") if rounds else None
    if not ref:
        return []
    lines = ["## Same model\n"]
    for s in cfg["servers"]:
        m = rounds[0]["servers"].get(s, {}).get("mse_batch32")
        if m and s != "ours":
            diff = max(abs(a - b) for a, b in zip(m, ref, strict=True))
            lines.append(
                f"- {title(s)}: the 32 MSEs of beats 1{DASH}32 differ from ours by at most {diff:.1e}"
            )
    lines.append("")
    return lines


def _failed_cells_section(data: dict) -> list[str]:
    """Every cell that produced no numbers, with its error, so that a gap in a table is explained."""
    failed = [(r["round"], c) for r in data["rounds"] for c in r["cells"] if "error" in c]
    if not failed:
        return []
    lines = ["## Failed cells\n"]
    for rnd, c in failed:
        lines.append(f"- round {rnd}, {c['server']} b{c['batch']} c{c['concurrency']}: {c['error'][:300]}")
    lines.append("")
    return lines


def tf_blame(rounds, server: str, other: str, row: dict, other_meets: bool | None) -> str:
    """Whether TensorFlow is what blocks a missed target. LiteRT meeting it is not enough on
    a machine this noisy: it must also beat TensorFlow in every round."""
    if not other_meets:
        return "LiteRT in the same path misses it too, so TensorFlow is not what blocks it"
    http_cell = row.get("cell")  # (batch, concurrency, metric) of an HTTP target, else None
    pr = paired(rounds, other, server, *http_cell) if http_cell else None
    metric = http_cell[2] if http_cell else None
    if not pr:
        return "LiteRT in the same path meets it"
    better = pr["max"] < 1 if metric == "p99_ms" else pr["min"] > 1
    what = "p99" if metric == "p99_ms" else "req/s"
    spread = f"LiteRT {DIV} TF {what} {_r(pr)} per round"
    if better:
        return f"LiteRT in the same path meets it and beats TensorFlow in every round ({spread}), so TensorFlow is what blocks it"
    return f"LiteRT in the same path meets it, but {spread} spans 1: within this machine's noise, not clearly TensorFlow"


def verdict(data: dict, ours_like: list[str]) -> str:
    """Which targets are met, and for each one a TensorFlow server missed whether TensorFlow
    is what blocks it: the same code path on LiteRT (same run, same rounds) meets it or not."""
    cfg = data["config"]
    out = []
    for s in ours_like:
        rows = target_rows(data)
        other = twin(cfg, s, "litert") if base_of(cfg, s) in OURS else None
        met = [r for r in rows if _met(r["fn"](s), r["op"], r["bound"])]
        missed = [r for r in rows if _met(r["fn"](s), r["op"], r["bound"]) is False]
        out.append(f"**{title(s).replace('**', '')}:** {len(met)} of {len(rows)} targets met.")
        for r in missed:
            st = r["fn"](s)
            line = f"- Missed: {r['name']} is {st['median']:.3f}{X} (bound {r['op']} {r['bound']:g}{X})."
            if other and "RSS" not in r["name"]:
                ox = r["fn"](other)
                if ox:
                    verdict_text = tf_blame(data["rounds"], s, other, r, _met(ox, r["op"], r["bound"]))
                    line += f" With LiteRT in the same path: {ox['median']:.3f}{X}: {verdict_text}."
            elif "RSS" in r["name"] and other:
                rss = stats([worker_rss(rnd, other) for rnd in data["rounds"]])
                line += (
                    f" The LiteRT worker needs {_s(rss)} MiB: the yardstick itself is TensorFlow's import."
                )
            out.append(line)
        out.append("")
    return "\n".join(out)
