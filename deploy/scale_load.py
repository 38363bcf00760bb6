#!/usr/bin/env python3
"""Load client for deploy/scale-test.sh: several threads POST real ECG5000 beats to
/predict through the load balancer and record every request's outcome and time.

    python3 deploy/scale_load.py --url http://127.0.0.1:18080 --threads 8 --rate 150 \
        --stop-file /tmp/stop --out summary.json

Each request is a new connection (no keep-alive, so a failure is the server's, never a
stale idle connection's). A request counts as ok only if it answers 200 with one
prediction per beat sent; anything else (another status, a reset, a timeout, a body that
does not parse) is a failure, kept with its wall-clock time and error. The run ends when
--stop-file appears, after --duration seconds, after --requests requests, or on SIGTERM /
SIGINT; the threads finish the request they are in, then a JSON summary is written to
--out (and stdout): counts, failures, latency quantiles, requests per second per
second, and how many requests each replica answered (HAProxy's X-Served-By header).
Standard library only, so it runs with any python3.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

DATA = Path(__file__).resolve().parent.parent / "data" / "ECG5000_TEST.tsv.gz"


def load_beats(path: Path, count: int) -> list[list[float]]:
    beats = []
    with gzip.open(path, "rt") as f:
        for line in f:
            _, *values = line.split()
            beats.append([float(v) for v in values])
            if len(beats) == count:
                break
    return beats


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[tuple[float, float, str, str]] = []  # wall time, seconds, outcome, server

    def add(self, start: float, seconds: float, outcome: str, server: str) -> None:
        with self.lock:
            self.records.append((start, seconds, outcome, server))


def one_request(host: str, port: int, body: bytes, beats: int, timeout: float) -> tuple[str, str]:
    """(outcome, server): outcome "ok", an HTTP status, or the exception's name and text."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(
            "POST", "/predict", body=body, headers={"Content-Type": "application/json", "Connection": "close"}
        )
        resp = conn.getresponse()
        raw = resp.read()
        server = resp.getheader("X-Served-By") or "?"
        if resp.status != 200:
            return f"HTTP {resp.status}: {raw[:120].decode(errors='replace')}", server
        if len(json.loads(raw)["predictions"]) != beats:
            return "wrong number of predictions", server
        return "ok", server
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}", "-"
    finally:
        conn.close()


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the load balancer, e.g. http://127.0.0.1:18080")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument(
        "--rate", type=float, default=150.0, help="requests/s over all threads (0: as fast as possible)"
    )
    ap.add_argument("--beats", type=int, default=2, help="beats per request")
    ap.add_argument("--duration", type=float, default=600.0, help="stop after this many seconds")
    ap.add_argument("--requests", type=int, default=0, help="stop after this many requests (0: no limit)")
    ap.add_argument("--stop-file", type=Path, help="stop once this file exists")
    ap.add_argument("--ready-file", type=Path, help="touched once the first request has been answered")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--out", type=Path, help="write the JSON summary here too")
    args = ap.parse_args()

    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    beats = load_beats(DATA, args.beats)
    body = json.dumps({"beats": beats}).encode()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    recorder = Recorder()
    sent: Counter[str] = Counter()
    sent_lock = threading.Lock()
    first_answer = threading.Event()
    start = time.time()
    interval = args.threads / args.rate if args.rate > 0 else 0.0

    def worker(index: int) -> None:
        due = start + index * interval / args.threads  # threads staggered over one interval
        while not stop.is_set():
            if interval:
                delay = due - time.time()
                if delay > 0 and stop.wait(delay):
                    break
                due = max(due + interval, time.time() - interval)  # no burst to catch up
            with sent_lock:
                if args.requests and sent["n"] >= args.requests:
                    stop.set()
                    break
                sent["n"] += 1
            t0 = time.time()
            outcome, server = one_request(host, port, body, len(beats), args.timeout)
            recorder.add(t0, time.time() - t0, outcome, server)
            first_answer.set()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
    for t in threads:
        t.start()
    while not stop.is_set():
        if first_answer.is_set() and args.ready_file and not args.ready_file.exists():
            args.ready_file.touch()
        if args.stop_file and args.stop_file.exists():
            break
        if time.time() - start > args.duration:
            break
        stop.wait(0.05)
    stop.set()
    for t in threads:
        t.join(args.timeout + 5)
    end = time.time()

    records = sorted(recorder.records)
    latencies = sorted(r[1] for r in records)
    failures = [
        {
            "at": round(r[0], 3),
            "after_s": round(r[0] - start, 3),
            "seconds": round(r[1], 3),
            "error": r[2],
            "served_by": r[3],
        }
        for r in records
        if r[2] != "ok"
    ]
    per_second = Counter(int(r[0] - start) for r in records)
    summary = {
        "started": round(start, 3),
        "ended": round(end, 3),
        "seconds": round(end - start, 2),
        "threads": args.threads,
        "beats_per_request": len(beats),
        "requests": len(records),
        "ok": len(records) - len(failures),
        "failed": len(failures),
        "failures": failures[:200],
        "errors": dict(Counter(f["error"] for f in failures)),
        "served_by": dict(sorted(Counter(r[3] for r in records if r[2] == "ok").items())),
        "latency_s": {
            "p50": round(quantile(latencies, 0.50), 4),
            "p90": round(quantile(latencies, 0.90), 4),
            "p99": round(quantile(latencies, 0.99), 4),
            "max": round(latencies[-1], 4) if latencies else None,
        },
        "slowest": [
            {
                "at": round(r[0], 3),
                "after_s": round(r[0] - start, 3),
                "seconds": round(r[1], 3),
                "served_by": r[3],
            }
            for r in sorted(records, key=lambda r: -r[1])[:5]
        ],
        "requests_per_second": {
            "mean": round(len(records) / max(end - start, 1e-9), 1),
            "min_in_a_full_second": min((per_second[s] for s in range(int(end - start))), default=0),
        },
    }
    text = json.dumps(summary, indent=1)
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
