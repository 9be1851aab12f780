"""Train two of the zoo's image classifiers on scikit-learn's digits and print their test accuracy.

LeNet-5 (`LeNet5Digits`, spec/lenet5.arch: 1x32x32) and ResNet-18 (`ResNet18Digits`,
spec/resnet18.arch: the grey image repeated to 3x32x32) run their training definitions as
`dlc train` does (the same loop, in this process), for a few epochs instead of the spec's: the
accuracy on the 270 test digits with the best validation checkpoint, the seconds, and the
training throughput of the last epoch.

    nice -n 10 python benchmarks/train_zoo_all.py [--epochs-lenet 5] [--epochs-resnet 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from dlc.compiler.pipeline import compile_file
from dlc.runtime.train.loop import Options, train

ROOT = Path(__file__).resolve().parents[1]


def run(spec: str, name: str, epochs: int) -> dict:
    result = compile_file(ROOT / "spec" / spec)
    result.raise_for_errors()
    plan = result.trains[name]
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        done = train(result, plan, Options(Path(out), quiet=True, epochs=epochs))
        seconds = time.perf_counter() - started
        records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r.get("kind") == "epoch"][-1]
    return {"train": name, "epochs": done.epochs, "test_accuracy": done.test["accuracy"],
            "val_accuracy": done.best["accuracy"], "test_loss": done.test["loss"], "seconds": round(seconds, 1),
            "train_examples_per_s": last["examples_per_s"], "batch": plan.config.batch}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs-lenet", type=int, default=5)
    p.add_argument("--epochs-resnet", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU")
    for spec, name, epochs in (("lenet5.arch", "LeNet5Digits", args.epochs_lenet),
                               ("resnet18.arch", "ResNet18Digits", args.epochs_resnet)):
        r = run(spec, name, epochs)
        print(f"{r['train']:<15} {r['epochs']:>2} epochs (batch {r['batch']})  test accuracy {r['test_accuracy']:.4f}  "
              f"val {r['val_accuracy']:.4f}  test loss {r['test_loss']:.4f}  {r['seconds']:.1f} s  "
              f"{r['train_examples_per_s']:.0f} train examples/s", flush=True)


if __name__ == "__main__":
    main()
