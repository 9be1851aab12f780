"""word2vec on pydoc words, measured: `dlc train spec/word2vec.arch --train SkipGramText`.

    nice -n 10 python benchmarks/train_words.py [--out DIR] [--epochs N]

Skip-gram with negative sampling (the notes' objective, -log sigmoid(u_o.v_c) - sum_k log
sigmoid(-u_k.v_c), K = 5 noise words from count^(3/4)) on the 1,000 most frequent words of CPython's
documentation, 100 dimensions, Adam. Prints the train and validation loss (nats per pair) of each
epoch, which must fall from epoch to epoch (exit 1 otherwise), then the test split's neighbours
table (cosine, best weights) and its figures against the cosine of random word pairs.

Runs in this process on one thread (the definition is small: one thread is faster than two
threads fighting for two shared cores).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dlc_train_words"))
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    run = args.out.resolve()
    torch.set_num_threads(1)
    from dlc.cli import main as dlc

    start = time.perf_counter()
    code = dlc(["train", str(ROOT / "spec/word2vec.arch"), "--train", "SkipGramText", "-o", str(run),
                "--epochs", str(args.epochs), "--quiet"])
    seconds = time.perf_counter() - start
    if code != 0:
        return code
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    print("\n| epoch | train loss | val loss | val positive | val negative | mean cosine (val) | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in epochs:
        shown = r.get("shows", {}).get("neighbours", {})
        print(f"| {r['epoch']} | {r['train']['loss']:.4f} | {r['val']['loss']:.4f} | {r['val']['positive']:.4f} | "
              f"{r['val']['negative']:.4f} | {shown.get('mean_cosine', float('nan')):.3f} | {r['seconds']:.1f} |")
    summary = json.loads((run / "summary.json").read_text())
    figures = summary["shows"]["neighbours"]
    print(f"\ntest loss {summary['test']['loss']:.4f} nats per pair; {len(epochs)} epochs in {seconds:.0f} s wall\n")
    print((run / "samples" / "neighbours_test.txt").read_text())
    print(f"mean cosine of the listed neighbours {figures['mean_cosine']:.3f}, of random word pairs "
          f"{figures['random_cosine']:.3f} ({figures['words_found']:.0f} of the listed words in the vocabulary)")
    falling = [b["train"]["loss"] < a["train"]["loss"] for a, b in zip(epochs, epochs[1:])]
    if not all(falling):
        print("the train loss did not fall every epoch", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
