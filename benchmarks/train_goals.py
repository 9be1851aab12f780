"""The training goals of the README, measured: each zoo training definition run as a user runs it.

    python benchmarks/train_goals.py [--out DIR] [--only digits,vae,gpt,pixelcnn,compiled]

- digits: `dlc train spec/digits_cnn.arch --train Digits` -> test accuracy (goal >= 97 %) and wall time
  (goal: under a minute on 2 cores);
- vae: `dlc train spec/vae.arch` -> the test split's negative ELBO (nats per image) after each of the
  first 5 epochs (goal: it falls every epoch), and the pictures of samples and reconstructions;
- gpt: `dlc train spec/gpt2.arch` (CharGPT) -> validation bits per character against the unigram
  entropy of the training text (goal: at least 1 bit below it within 5 minutes);
- pixelcnn: `dlc train spec/pixelcnn.arch` -> test bits per dim on binarized digits (a uniform model: 1);
- compiled: the digits checkpoint through `dlc compile --weights` and `dlc.runtime` -> test accuracy,
  the same as PyTorch's (and every prediction the same).

Each run is its own `dlc` process on the whole machine; figures go to stdout as a Markdown table
and to DIR/train_goals.json. Resume equality and 2-process equality are tests
(tests/test_train_loop.py), not figures.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOALS = ("digits", "vae", "gpt", "pixelcnn", "compiled")


def dlc(*args: str, cwd: Path) -> float:
    """Run `dlc ARGS` (output shown); the wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlc", *args], cwd=cwd, check=True)
    return time.perf_counter() - start


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dlc_train_goals"))
    ap.add_argument("--only", default=",".join(GOALS), help="comma-separated subset of " + ", ".join(GOALS))
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    rows: list[tuple[str, str, str, str]] = []  # goal, figure, target, command
    figures: dict[str, dict] = {}

    if "digits" in only or "compiled" in only:
        run = out / "digits"
        seconds = dlc("train", str(ROOT / "spec/digits_cnn.arch"), "--train", "Digits", "-o", str(run), "--quiet",
                      cwd=out) if not (run / "summary.json").exists() else None
        summary = json.loads((run / "summary.json").read_text())
        acc = summary["test"]["accuracy"]
        seconds = seconds or summary["seconds"]
        figures["digits"] = {"test_accuracy": acc, "seconds": seconds, "train_seconds": summary["seconds"]}
        rows.append(("digits CNN test accuracy", f"{acc:.2%} in {seconds:.0f} s ({summary['seconds']:.0f} s training)",
                     ">= 97 %, < 60 s", "dlc train spec/digits_cnn.arch --train Digits -o runs/digits"))

    if "compiled" in only:
        run = out / "digits"
        art = out / "digits_artifact"
        dlc("compile", str(ROOT / "spec/digits_cnn.arch"), "--weights", str(run / "best.safetensors"),
            "-o", str(art), cwd=out)
        from dlc import runtime
        from dlc.runtime.train import data as datasets

        test = datasets.load("digits", {"size": 28}).splits["test"]
        model = runtime.load(art)
        preds = np.concatenate([next(iter(model(test["image"][i:i + 1]).values())).argmax(1)
                                for i in range(len(test["label"]))])
        compiled_acc = float((preds == test["label"]).mean())
        torch_acc = figures["digits"]["test_accuracy"]
        figures["compiled"] = {"test_accuracy": compiled_acc, "pytorch_test_accuracy": torch_acc}
        rows.append(("compiled digits (TVM, dlc.runtime)", f"{compiled_acc:.2%} (PyTorch {torch_acc:.2%})",
                     "= PyTorch", "dlc compile spec/digits_cnn.arch --weights runs/digits/best.safetensors -o build/digits"))

    if "vae" in only:
        run = out / "vae"
        seconds = dlc("train", str(ROOT / "spec/vae.arch"), "-o", str(run), "--quiet", cwd=out)
        elbo = [r["test"]["loss"] for r in records(run) if r.get("kind") == "epoch"][:5]
        falling = all(b < a for a, b in zip(elbo, elbo[1:]))
        figures["vae"] = {"test_neg_elbo_first_5": elbo, "falls_every_epoch": falling, "seconds": seconds,
                          "pictures": sorted(str(p) for p in (run / "samples").glob("*_epoch020.png"))}
        rows.append(("VAE test -ELBO, epochs 1-5 (nats/image)", " > ".join(f"{e:.1f}" for e in elbo)
                     + (" (falls every epoch)" if falling else " (does NOT fall every epoch)"),
                     "falls every epoch", "dlc train spec/vae.arch -o runs/vae"))

    if "gpt" in only:
        run = out / "chargpt"
        seconds = dlc("train", str(ROOT / "spec/gpt2.arch"), "-o", str(run), "--quiet", cwd=out)
        summary = json.loads((run / "summary.json").read_text())
        epochs = [r for r in records(run) if r.get("kind") == "epoch"]
        val_bits = [r["val"]["bits_per_char"] for r in epochs]
        elapsed = list(np.cumsum([r["seconds"] for r in epochs]))
        unigram = summary["unigram_bits"]
        figures["gpt"] = {"val_bits_per_char": val_bits, "epoch_end_seconds": elapsed, "unigram_bits": unigram,
                          "test": summary["test"], "seconds": seconds}
        rows.append(("char GPT val bits/char", f"{val_bits[-1]:.3f} after {elapsed[-1]:.0f} s (unigram {unigram:.3f}; "
                     f"test {summary['test']['bits_per_char']:.3f})", "<= unigram - 1 in 5 min",
                     "dlc train spec/gpt2.arch -o runs/chargpt"))

    if "pixelcnn" in only:
        run = out / "pixelcnn"
        seconds = dlc("train", str(ROOT / "spec/pixelcnn.arch"), "-o", str(run), "--quiet", cwd=out)
        summary = json.loads((run / "summary.json").read_text())
        bits = summary["test"]["bits_per_dim"]
        figures["pixelcnn"] = {"test_bits_per_dim": bits, "uniform_bits_per_dim": 1.0, "seconds": seconds}
        rows.append(("PixelCNN test bits/dim (binarized digits)", f"{bits:.3f} (uniform 1.000) in {seconds:.0f} s",
                     "well below 1", "dlc train spec/pixelcnn.arch -o runs/pixelcnn"))

    print("\n| goal | measured | target | command |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    (out / "train_goals.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{out / 'train_goals.json'}")


if __name__ == "__main__":
    main()
