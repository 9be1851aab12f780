"""Objectives with input gradients, measured: WGAN-GP's training figures, and the clean and FGSM
accuracy of a digits classifier trained plainly against one trained adversarially.

    python benchmarks/train_gradients.py [--out DIR] [--gp-epochs 1] [--epochs 3] [--size 8] [--widths 16,32,32]
                                         [--only gp,fgsm]

- gp: `dlc train spec/wgan.arch --train WGANGPDigits --epochs N` -> per epoch the critic's W1 estimate
  E[D(x)] - E[D(G(z))] (val), its gradient penalty E[(||grad D(x^)||_2 - 1)^2] (val), the generator's loss,
  wall seconds and examples per second;
- fgsm: spec/digits_cnn.arch's `DigitsAdversarial` (loss 0.5 L(x) + 0.5 L(x*), x* the FGSM example
  clamp(x + 0.1 sign(grad_x L), 0, 1)) against the same definition with the clean loss only (which is
  `Digits` with the FGSM accuracy beside it): test accuracy on clean and on FGSM examples (made against
  the weights scored). With `--size 8 --widths 16,32,32` both run on the 8x8 digits (DigitsCNN takes any
  size) with a narrower DigitsCNN, which two shared CPU cores train in minutes; `--size 28 --widths
  32,64,64` is the definitions as written.

Each run is its own `dlc` process writing into a temporary folder (or DIR); the figures go to stdout.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dlc(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlc", *args, "--quiet"], cwd=cwd, check=True)
    return time.perf_counter() - start


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def gp(out: Path, epochs: int) -> None:
    run = out / "wgan_gp"
    seconds = dlc("train", str(ROOT / "spec" / "wgan.arch"), "--train", "WGANGPDigits", "-o", str(run),
                  "--epochs", str(epochs), cwd=out)
    print(f"\n## WGAN-GP on digits 28x28 ({epochs} epochs, {seconds:.0f} s wall)\n")
    print("| epoch | val W1 estimate | val penalty | val generator loss | train W1 estimate | s | ex/s |")
    print("|---|---|---|---|---|---|---|")
    for r in records(run):
        if r["kind"] != "epoch":
            continue
        v, t = r["val"], r["train"]
        print(f"| {r['epoch']} | {v['critic.distance']:.4f} | {v['critic.penalty']:.4f} | {v['generator.loss']:.4f} "
              f"| {t['critic.distance']:.4f} | {r['seconds']:.1f} | {r['examples_per_s']:.0f} |")


def fgsm(out: Path, epochs: int, size: int, widths: str) -> None:
    text = (ROOT / "spec" / "digits_cnn.arch").read_text()
    text = text.replace("DigitsCNN(num_classes=10, dropout_p=0.25)",
                        f"DigitsCNN(num_classes=10, widths=[{widths}], dropout_p=0.25)")
    if size != 28:
        text = text.replace("size=28", f"size={size}").replace("28, 28]", f"{size}, {size}]")
        text = text.replace("H=28, W=28", f"H={size}, W={size}")
    start = text.index("train DigitsAdversarial")
    adversarial = text[start:text.index("\n}\n", start) + 3]
    clean = adversarial.replace("train DigitsAdversarial", "train DigitsClean").replace(
        "output loss = (half_clean, half_adversarial) -> add", "output loss = clean")
    spec = out / "digits_fgsm.arch"
    spec.write_text(text + "\n" + clean)
    rows = []
    for name in ("DigitsClean", "DigitsAdversarial"):
        run = out / name
        seconds = dlc("train", str(spec), "--train", name, "-o", str(run), "--epochs", str(epochs), cwd=out)
        summary = json.loads((run / "summary.json").read_text())
        rows.append((name, summary["test"]["accuracy"], summary["test"]["fgsm_accuracy"], seconds))
    print(f"\n## Clean vs FGSM accuracy (beta = 0.1), digits {size}x{size}, DigitsCNN widths [{widths}], "
          f"{epochs} epochs, test split\n")
    print("| training | clean accuracy | FGSM accuracy | s |")
    print("|---|---|---|---|")
    for name, acc, adv, seconds in rows:
        label = "clean loss (Digits)" if name == "DigitsClean" else "adversarial (DigitsAdversarial)"
        print(f"| {label} | {acc:.4f} | {adv:.4f} | {seconds:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--gp-epochs", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--size", type=int, default=8)
    p.add_argument("--widths", default="16,32,32")
    p.add_argument("--only", default="gp,fgsm")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        only = a.only.split(",")
        if "fgsm" in only:
            fgsm(out, a.epochs, a.size, a.widths.replace(",", ", "))
        if "gp" in only:
            gp(out, a.gp_epochs)


if __name__ == "__main__":
    main()
