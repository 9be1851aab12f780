"""A long fuzzing campaign of the front end and the emitters (compiler/fuzz.py).

    python benchmarks/fuzz.py --minutes 10 --seed 0 [--jobs 2] [--out fuzz-findings]

Runs cases 0, 1, 2, ... of the seed, each in a child process with a time and a memory limit,
until `--minutes` have passed; prints the count of each outcome, and saves the spec of every
distinct finding (a defect outcome, told apart by outcome, exception type and innermost frame)
under `--out` as `<outcome>-<n>.arch`, with its seed, case number and outcome in a comment on
top. `python -c "from dlc.compiler.fuzz import make_case; print(make_case(SEED, N).text)"`
gives a case's text again. Exit status 1 if any defect was found.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

from dlc.compiler import fuzz


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    ap.add_argument("--case-seconds", type=float, default=fuzz.CASE_SECONDS)
    args = ap.parse_args()
    counts: collections.Counter[str] = collections.Counter()
    findings: dict[tuple[str, str, str], Path] = {}
    started = time.monotonic()
    campaign = fuzz.run_campaign(args.seed, jobs=args.jobs, minutes=args.minutes, seconds=args.case_seconds)
    for n, (case, outcome) in enumerate(campaign, 1):
        counts[outcome.kind] += 1
        if outcome.kind in fuzz.DEFECTS and outcome.key() not in findings:
            findings[outcome.key()] = save(args.out, case, outcome, len(findings) + 1)
            print(f"  {outcome.kind}: {outcome.detail} [{outcome.where}] -> {findings[outcome.key()]}", flush=True)
        if n % 100 == 0:
            print(f"  {n} cases, {time.monotonic() - started:.0f} s: {dict(counts)}", flush=True)
    total = sum(counts.values())
    print(f"\nseed {args.seed}: {total} cases in {time.monotonic() - started:.0f} s ({args.jobs} jobs)")
    for kind in fuzz.OUTCOMES:
        print(f"  {kind:11} {counts[kind]:6}")
    print(f"distinct findings: {len(findings)}" + (f" (specs under {args.out}/)" if findings else ""))
    return 1 if findings else 0


def save(out: Path, case: fuzz.Case, outcome: fuzz.Outcome, number: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{outcome.kind}-{number}.arch"
    header = (f"# dlc fuzz: seed {case.seed}, case {case.index} (from {case.base}: {', '.join(case.mutations)})\n"
              f"# {outcome.kind}: {outcome.detail}\n# at {outcome.where or '-'}\n")
    path.write_text(header.replace("\r", " ") + case.text)
    return path


if __name__ == "__main__":
    sys.exit(main())
