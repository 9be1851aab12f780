"""`dlc bench` over zoo models: the dlc/TVM artifact against eager PyTorch and ONNX Runtime.

    python benchmarks/zoo_bench.py [--tune N] [--runs 50] [--threads T] [--out FILE] [spec[:Model[:SYM=N,..]] ...]

Each model is compiled for this CPU (tuned with `--tune N` trials into the shared tuning
database, so a rerun measures nothing new; tuned builds take `--winograd`, as the README's
figures did, unless `--no-winograd`), then timed by `dlc bench --json` at the spec's
example sizes (batch 1), or at the sizes an item names: `spec/gpt2.arch:GPT2:T=128`. Prints a
Markdown table and writes it (plus the raw JSON) to `--out`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["spec/digits_cnn.arch", "spec/lenet5.arch", "spec/resnet18.arch", "spec/mlp_autoencoder.arch"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="*", default=DEFAULT, help="spec paths, optionally spec:Model or spec:Model:T=128")
    ap.add_argument("--tune", type=int, default=None, help="trials per model (default: untuned)")
    ap.add_argument("--tune-db", help="tuning database directory (default: dlc's)")
    ap.add_argument("--no-winograd", action="store_true",
                    help="with --tune: keep the direct 3x3 convs (IEEE NaN/Inf semantics; slower on wide convs)")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the table (.md) and raw results (.json)")
    args = ap.parse_args()

    rows, raw = [], []
    for item in args.specs:
        spec, _, rest = item.partition(":")
        model, _, sizes = rest.partition(":")
        cmd = [sys.executable, "-m", "dlc", "bench", spec, "--json", "--runs", str(args.runs), "--dim", "B=1"]
        for size in filter(None, sizes.split(",")):
            cmd += ["--dim", size]
        cmd += ["--model", model] if model else []
        cmd += ["--tune", str(args.tune)] if args.tune is not None else []
        cmd += ["--winograd"] if args.tune is not None and not args.no_winograd else []
        cmd += ["--tune-db", args.tune_db] if args.tune_db else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            print(f"{item}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        result = json.loads(proc.stdout)
        result["wall_s"] = round(time.perf_counter() - started, 1)
        raw.append(result)
        rows.append(_row(result))
        print(rows[-1], flush=True)
    header = ("| model | inputs | threads | tuning (trials, time) | dlc/TVM ms | PyTorch eager ms | ONNX Runtime ms "
              "| eager / dlc | ORT / dlc |\n|---|---|---|---|---|---|---|---|---|")
    table = header + "\n" + "\n".join(rows) + "\n"
    print("\n" + table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(
            f"Command: `python benchmarks/zoo_bench.py {' '.join(sys.argv[1:])}`; median (p10-p90) of "
            f"{args.runs} calls after warm-up; same inputs and thread count for all three.\n\n" + table)
        args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")


def _row(r: dict) -> str:
    t = r.get("tuning") or {}
    tuning = f"{t['budget']} budget, {t['trials']} new, {t['seconds'] / 60:.0f} min" if t.get("budget") else "untuned"

    def cell(backend: str) -> str:
        x = r["results"][backend]
        return f"{x['median_ms']:.2f} ({x['p10_ms']:.2f}-{x['p90_ms']:.2f})"

    inputs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in r["inputs"].items())
    return (f"| {r['model']} | {inputs} | {r['threads']} | {tuning} | {cell('dlc')} | {cell('torch')} | "
            f"{cell('onnxruntime')} | {r['speedup']['torch']:.2f}x | {r['speedup']['onnxruntime']:.2f}x |")


if __name__ == "__main__":
    main()
