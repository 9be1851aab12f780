"""Sequence to sequence training, measured: held-out BLEU of the zoo's definitions on `data synthetic`.

    nice -n 10 python benchmarks/train_seq.py [--out DIR] [--only seq2seq,transformer] [--epochs N]

- seq2seq: `dlc train spec/seq2seq.arch --train Seq2SeqReverse` (LSTM encoder-decoder with additive
  attention, reversing strings of 1 to 10 letters) -> test BLEU, greedy and beam 4 (goal: >= 90);
- transformer: `dlc train spec/transformer.arch --train TransformerReverse` (2 + 2 layers, d 64).

Each run is its own `dlc` process on one thread (OMP_NUM_THREADS=1: on 2 shared cores more threads
only wait on each other), `--epochs` epochs (default: each definition's own), meant to take at most
5 minutes. BLEU, exact match and the mean length-normalized log-prob are the `translate` show's
figures on the test split with the best weights (summary.json "shows"); the examples file is
DIR/NAME/samples/translate_test.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"seq2seq": ("spec/seq2seq.arch", "Seq2SeqReverse"),
        "transformer": ("spec/transformer.arch", "TransformerReverse")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dlc_train_seq"))
    ap.add_argument("--only", default=",".join(RUNS), help="comma-separated subset of " + ", ".join(RUNS))
    ap.add_argument("--epochs", type=int, default=None, help="override each definition's `config epochs`")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    for key in args.only.split(","):
        spec, name = RUNS[key]
        run = out / name
        command = [sys.executable, "-m", "dlc", "train", str(ROOT / spec), "--train", name, "-o", str(run), "--quiet"]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        start = time.perf_counter()
        subprocess.run(command, cwd=out, check=True, env=env)
        seconds = time.perf_counter() - start
        summary = json.loads((run / "summary.json").read_text())
        shown = summary["shows"]["translate"]
        rows.append((name, summary["epochs"], seconds, summary["test"].get("accuracy", float("nan")), shown))
    print("\n| definition | epochs | wall s | test token acc. | BLEU greedy | BLEU beam | exact greedy | exact beam "
          "| logprob greedy | logprob beam |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, epochs, seconds, accuracy, s in rows:
        print(f"| {name} | {epochs} | {seconds:.0f} | {accuracy:.4f} | {s['bleu_greedy']:.2f} "
              f"| {s['bleu_beam']:.2f} | {s['exact_greedy']:.3f} | {s['exact_beam']:.3f} "
              f"| {s['logprob_greedy']:.4f} | {s['logprob_beam']:.4f} |")
    saved = out / "train_seq.json"  # figures of earlier runs into this folder are kept beside these
    figures = json.loads(saved.read_text()) if saved.exists() else {}
    figures.update({r[0]: {"epochs": r[1], "seconds": r[2], "accuracy": r[3], **r[4]} for r in rows})
    saved.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
