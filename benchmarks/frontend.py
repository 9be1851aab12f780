"""How long the front end takes per zoo spec: parse, resolve, expand, infer shapes, weights, costs.

    python benchmarks/frontend.py [--repeat 20]

Prints one row per spec (median and best of `--repeat` runs, node count) and the time to
build the LALR parser once per process, which every `dlc` invocation pays first.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from dlc.compiler.passes.cost import count_costs
from dlc.compiler.pipeline import compile_file
from dlc.compiler.syntax.parse import _parser

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    t0 = time.perf_counter()
    _parser()
    print(f"LALR parser construction (once per process): {1e3 * (time.perf_counter() - t0):.1f} ms\n")
    rows = []
    for spec in sorted((ROOT / "spec").glob("*.arch")):
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            result = compile_file(spec)
            for g in result.graphs.values():
                count_costs(g)
            times.append(time.perf_counter() - t)
        nodes = sum(len(g.nodes) for g in result.graphs.values())
        rows.append((spec.name, nodes, statistics.median(times), min(times)))
    print(f"{'spec':24} {'nodes':>6} {'median ms':>10} {'best ms':>8}")
    for name, nodes, med, best in sorted(rows, key=lambda r: -r[1]):
        print(f"{name:24} {nodes:6d} {1e3 * med:10.1f} {1e3 * best:8.1f}")


if __name__ == "__main__":
    main()
