"""Paired ratios between any two servers of a finished run (A/B runs of patches).

``python -m benchmarks.compare benchmarks/out/run-*/results.json A B [metric]``: for every
cell, the per-round ratio A ÷ B of req/s (or p50_ms, p99_ms), median and range.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.report import cell, stats


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) not in (3, 4):
        print(__doc__)
        return 2
    data = json.loads(Path(args[0]).read_text())
    a, b = args[1], args[2]
    metric = args[3] if len(args) == 4 else "rps"
    cfg, rounds = data["config"], data["rounds"]
    print(f"{a} / {b}, {metric}, per round: median (min-max) [rounds]")
    for batch in cfg["batches"]:
        for conc in cfg["concurrency"]:
            values = []
            for rnd in rounds:
                x, y = cell(rnd, a, batch, conc), cell(rnd, b, batch, conc)
                if x and y and y[metric]:
                    values.append(x[metric] / y[metric])
            st = stats(values)
            text = f"{st['median']:.3f} ({st['min']:.3f}-{st['max']:.3f}) [{st['n']}]" if st else "-"
            print(f"  b{batch:<4} c{conc:<3} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
