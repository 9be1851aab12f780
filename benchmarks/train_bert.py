"""BERT pre-training on CPython's documentation (spec/bert.arch, `train BertPretrain`): masked-LM
accuracy on held-out masked tokens against the unigram baseline, and next-sentence accuracy.

    nice -n 10 python benchmarks/train_bert.py [--epochs 1] [--copies 1] [--finetune] [--out DIR]

The definition runs as written (d 128, 2 layers, 2 heads, sequences of 64, vocabulary 2,000) except
for what fits the budget of the 2 shared cores: `copies` (the spec's 4 masked copies of the train
split) at --copies, `config epochs` at --epochs, and the warmup scaled to a tenth of the steps.
curves.png is not drawn. The figures are those of `show masked_lm` on the test split with the best
weights (by validation MLM accuracy): every masked token counted once. The unigram baseline answers
the train split's most frequent token at every masked position. With --finetune, BertAcceptability
and BertPair then run for one epoch each from the pre-trained encoder, and again from a fresh one.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spec_text(epochs: int, copies: int, steps_per_epoch: int) -> str:
    text = (ROOT / "spec" / "bert.arch").read_text()
    pre = re.search(r"train BertPretrain \{.*?\n\}", text, re.S).group(0)
    body = pre.replace("copies=4", f"copies={copies}")
    body = re.sub(r"epochs=\d+", f"epochs={epochs}", body)
    body = body.replace("warmup=200", f"warmup={max(1, epochs * steps_per_epoch // 10)}")
    return text.replace(pre, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--finetune", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_bert")
    args = ap.parse_args()

    import torch

    from dlc.compiler.pipeline import compile_file
    from dlc.runtime.train import loop, report
    from dlc.runtime.train import data as datasets

    torch.set_num_threads(1)  # the 2 cores are shared: one thread each is what a run gets
    report.plot_curves = lambda *a, **k: None  # figures only
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    data = datasets.load("bert", {"task": "pretrain", "seq": 64, "vocab": 2000, "copies": args.copies})
    steps_per_epoch = data.size("train") // 64
    spec = args.out / "bert.arch"  # `import "std/transformer.arch"` is found in the standard library
    spec.write_text(spec_text(args.epochs, args.copies, steps_per_epoch))
    compiled = compile_file(spec)
    assert compiled.ok, compiled.diagnostics
    start = time.perf_counter()
    loop.train(compiled, compiled.trains["BertPretrain"], loop.Options(args.out / "pretrain", quiet=True))
    seconds = time.perf_counter() - start
    summary = json.loads((args.out / "pretrain" / "summary.json").read_text())
    fig = summary["shows"]["masked_lm"]
    print(f"BertPretrain: {args.epochs} epochs x {steps_per_epoch} steps of 64 (copies={args.copies}), "
          f"{seconds:.0f} s, test split ({data.size('test')} pairs, {fig['masked_tokens']:.0f} masked tokens)\n")
    print("| figure | test |\n|---|---:|")
    rows = [("MLM accuracy (every masked token)", fig["mlm_accuracy"]),
            (f"unigram baseline (always `{data.meta['unigram_token']}`)", fig["unigram_accuracy"]),
            ("MLM top-5 accuracy", fig["mlm_top5"]),
            ("MLM accuracy at [MASK] positions", fig["mask_accuracy"]),
            ("MLM accuracy at random-token positions", fig["random_accuracy"]),
            ("MLM accuracy at kept positions", fig["kept_accuracy"]),
            ("NSP accuracy (chance 0.5)", fig["nsp_accuracy"]),
            ("MLM loss (nats, batch mean)", summary["test"]["mlm_loss"])]
    for label, value in rows:
        print(f"| {label} | {value:.4f} |")
    results = {"pretrain": {"seconds": seconds, "figures": fig, "test": summary["test"]}}
    if args.finetune:
        results["finetune"] = finetune(compiled, args.out)
    (args.out / "train_bert.json").write_text(json.dumps(results, indent=2))


def finetune(compiled, out: Path) -> dict:
    """One epoch of each fine-tuning task from the pre-trained encoder and from a fresh one."""
    import dataclasses
    import os

    from dlc.runtime.train import loop

    (out / "runs" / "bert").mkdir(parents=True)
    shutil.copy(out / "pretrain" / "best.bert.safetensors", out / "runs" / "bert" / "best.bert.safetensors")
    here = Path.cwd()
    os.chdir(out)  # the definitions read runs/bert/best.bert.safetensors
    found = {}
    print("\n| task (1 epoch) | from pre-trained | from scratch |\n|---|---:|---:|")
    try:
        for name, metric in (("BertAcceptability", "accuracy"), ("BertPair", "accuracy")):
            plan = compiled.trains[name]
            cfg = dataclasses.replace(plan.config, epochs=1)
            scores = []
            for start in (True, False):
                models = tuple(m if start or m.name != "bert" else dataclasses.replace(m, weights_from=None)
                               for m in plan.models)
                run = dataclasses.replace(plan, config=cfg, models=models)
                folder = out / f"{name}_{'pre' if start else 'scratch'}"
                loop.train(compiled, run, loop.Options(folder, quiet=True))
                scores.append(json.loads((folder / "summary.json").read_text())["test"][metric])
            found[name] = scores
            print(f"| {name} test {metric} | {scores[0]:.4f} | {scores[1]:.4f} |", flush=True)
    finally:
        os.chdir(here)
    return found


if __name__ == "__main__":
    main()
