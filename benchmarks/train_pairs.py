"""Siamese networks on digit pairs: verification accuracy on unseen test pairs.

Trains spec/siamese.arch's SiameseDigits (cosine embedding loss on SiameseCosine) and
SiameseDigitsContrastive (contrastive loss on SiameseDistance, the same tower) with `dlc train`,
for a few epochs on fewer training pairs than the spec's (so that both fit in about five minutes
on a shared CPU), and prints what `show verification(net)` measured with the best weights: the
threshold chosen on the val pairs, the accuracy with it on the test pairs (whose images no
training pair shows), the test AUC, and the definitions' own fixed-threshold `accuracy` on the test pairs.

    nice -n 10 python benchmarks/train_pairs.py [--pairs 768] [--eval-pairs 256] [--epochs 3] [-o runs/bench_pairs]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "siamese.arch"
DEFINITIONS = {"SiameseDigits": "cosine_embedding", "SiameseDigitsContrastive": "contrastive"}
SPEC_DATA = "digit_pairs(size=28, pairs=4096, eval_pairs=512)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=768, help="training pairs (the spec has 4096)")
    parser.add_argument("--eval-pairs", type=int, default=256, help="val and test pairs each (the spec has 512)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("-o", "--out", type=Path, default=None, help="run folders (default: a temporary one)")
    args = parser.parse_args()
    from dlc.cli import main as dlc

    text = SPEC.read_text()
    assert text.count(SPEC_DATA) == len(DEFINITIONS), "spec/siamese.arch's data lines changed"
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        spec = Path(tmp) / "siamese.arch"
        spec.write_text(text.replace(SPEC_DATA, f"digit_pairs(size=28, pairs={args.pairs}, "
                                                  f"eval_pairs={args.eval_pairs})"))
        rows = []
        for name, loss in DEFINITIONS.items():
            started = time.perf_counter()
            code = dlc(["train", str(spec), "--train", name, "-o", str(out / name), "--epochs", str(args.epochs),
                        "--quiet"])
            if code != 0:
                print(f"{name}: dlc train exited {code}", file=sys.stderr)
                return code
            summary = json.loads((out / name / "summary.json").read_text())
            rows.append((name, loss, time.perf_counter() - started, summary))
            print(f"{name}: {json.dumps(summary['shows']['verification'])}", flush=True)
    print(f"\n{args.pairs} training pairs, {args.eval_pairs} val and {args.eval_pairs} test pairs (28x28 digits), "
          f"{args.epochs} epochs, best weights by val `accuracy`")
    print(f"{'definition':26} {'loss':17} {'s':>6} {'threshold':>10} {'test acc':>9} {'test AUC':>9} "
          f"{'fixed-thr acc':>14}")
    for name, loss, seconds, s in rows:
        v = s["shows"]["verification"]
        print(f"{name:26} {loss:17} {seconds:6.0f} {v['threshold']:10.4f} {v['accuracy']:9.4f} {v['auc']:9.4f} "
              f"{s['test']['accuracy']:14.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
