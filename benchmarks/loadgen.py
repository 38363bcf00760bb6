"""The load generators: Debian's ``hey`` (default) and ``wrk``, as subprocesses.

Each call runs a closed loop of ``concurrency`` clients for ``seconds`` against one URL with
one request body, and returns requests/s, p50 and p99 latency (ms) and the count of
non-200 answers. A cell with errors is kept but flagged in the report.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

from benchmarks.common import Body


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def as_dict(self) -> dict:
        return asdict(self)


class LoadError(RuntimeError):
    pass


def tool_version(name: str) -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _seconds(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def run_hey(url: str, body: Body, concurrency: int, seconds: float) -> LoadResult:
    """hey with per-request CSV output (its own summary drops the upper percentiles when a
    cell has few requests); times are printed by hey with 0.1 ms resolution and include
    connecting, as every request on gunicorn's sync workers opens a new connection."""
    cmd = [
        shutil.which("hey") or "hey",
        "-z", f"{seconds}s",
        "-c", str(concurrency),
        "-m", "POST",
        "-T", body.content_type,
        "-D", str(body.file),
        "-o", "csv",
        # no Accept-Encoding: gzip (Go's default): MLServer would gzip its answers at level 9
        # for hey alone, and the same request must reach every server
        "-disable-compression",
        *[arg for k, v in body.headers.items() for arg in ("-H", f"{k}: {v}")],
        url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[0].startswith("response-time"):
        raise LoadError(f"hey failed ({proc.returncode}): {proc.stderr.strip()[:500]} {proc.stdout[:300]}")
    ok_times, errors, end = [], 0, 0.0
    for line in lines[1:]:
        fields = line.split(",")
        rt, status, offset = float(fields[0]), int(fields[6]), float(fields[7])
        end = max(end, offset + rt)
        if status == 200:
            ok_times.append(rt * 1000)
        else:
            errors += 1
    if not ok_times:
        raise LoadError(f"hey: no successful request ({errors} errors): {proc.stderr.strip()[:300]}")
    ok_times.sort()
    return LoadResult(
        rps=len(ok_times) / end,
        p50_ms=_percentile(ok_times, 50),
        p99_ms=_percentile(ok_times, 99),
        requests=len(ok_times),
        errors=errors,
    )


_WRK_SCRIPT = """wrk.method = "POST"
{headers}
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
"""


def _group(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in the load generator's output, which must have it."""
    match = re.search(pattern, text)
    if match is None:
        raise LoadError(f"no {pattern!r} in the output: {text[:500]}")
    return match.group(1)


def run_wrk(url: str, body: Body, concurrency: int, seconds: float) -> LoadResult:
    if body.file is None:
        raise LoadError("wrk reads the body from a file; the harness writes one")
    script = body.file.with_suffix(".lua")
    headers = {"Content-Type": body.content_type, **body.headers}
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script.write_text(_WRK_SCRIPT.format(body=str(body.file), headers=lines))
    threads = max(1, min(concurrency, 2))
    cmd = [
        shutil.which("wrk") or "wrk",
        "-t", str(threads),
        "-c", str(concurrency),
        "-d", f"{max(1, round(seconds))}s",
        "--latency",
        "-s", str(script),
        url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    text = proc.stdout
    if proc.returncode != 0 or "Requests/sec" not in text:
        raise LoadError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[:500]} {text[:500]}")
    rps = float(_group(r"Requests/sec:\s+([\d.]+)", text))
    pct = {
        int(p): _seconds(v, u) * 1000 for p, v, u in re.findall(r"\n\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\b", text)
    }
    total = int(_group(r"(\d+) requests in", text))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        # gunicorn's sync workers close every connection: wrk counts those closes as read
        # errors although each response was complete, so only connect/write/timeout count.
        errors += int(sock.group(1)) + int(sock.group(3)) + int(sock.group(4))
    return LoadResult(rps=rps, p50_ms=pct[50], p99_ms=pct[99], requests=total - errors, errors=errors)


RUNNERS = {"hey": run_hey, "wrk": run_wrk}
