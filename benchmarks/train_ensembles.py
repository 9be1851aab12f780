"""Ensembles on the digits classifier (runtime/train/ensembles.py): one model against prediction
averaging of k = 3..5 independent models, a snapshot ensemble and parameter averaging (EMA, SWA).

    nice -n 10 python benchmarks/train_ensembles.py [--size 8] [--epochs 8] [--widths 16,32,32] [--out DIR]

The train definitions of spec/digits_cnn.arch (DigitsEnsemble, DigitsSnapshot, DigitsAveraged, and an
SWA variant of DigitsAveraged written here) are run as written except for what fits a budget of
8 minutes on 2 shared cores (the spec's 15 epochs of 28x28 images take about a minute per epoch
there): the data at --size (8: scikit-learn's own 8x8 digits, not resized; the network works
unchanged, its pooling is global), DigitsCNN's widths at --widths, `config epochs` at --epochs, the
warmup scaled with the epochs, a cycle per 2 epochs, and an EMA decay of 0.95 instead of 0.99 (with
only 39 steps per epoch, 0.99 would still hold 0.99^312 = 4 % of the random initialization after 8
epochs). One torch thread; curves.png is not drawn (matplotlib costs seconds per epoch here). "one model" is member 1
of DigitsEnsemble: the same definition as `Digits` with the same seed, so the same run. Figures are the
test split's (270 images): accuracy and NLL of the (mean) softmax; the single models use their
`best` weights (by validation accuracy), the snapshots and the averages those of their end.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINS = ("DigitsEnsemble", "DigitsSnapshot", "DigitsAveraged", "DigitsSwa")


def spec_text(size: int, epochs: int, widths: str) -> str:
    """The network and the ensemble definitions of spec/digits_cnn.arch, at the benchmark's size and epochs."""
    text = (ROOT / "spec" / "digits_cnn.arch").read_text()
    network = text[text.index("block DigitsFeatures"):text.index("# Training (")]
    trains = [re.search(r"train %s \{.*?\n\}" % name, text, re.S).group(0) for name in TRAINS[:3]]
    swa = trains[2].replace("train DigitsAveraged", "train DigitsSwa").replace(
        "average=0.99", f'average="swa", average_from={epochs // 2 + 1}').replace(
        "schedule cosine(warmup=40)", "schedule constant")
    body = "\n\n".join([*trains, swa])
    body = body.replace("digits(size=28)", f"digits(size={size})").replace("f32[B, 1, 28, 28]", f"f32[B, 1, {size}, {size}]")
    body = re.sub(r"epochs=\d+", f"epochs={epochs}", body)
    body = body.replace("warmup=40", f"warmup={max(1, 40 * epochs // 15)}").replace(
        "cycles=5", f"cycles={max(1, epochs // 2)}").replace("average=0.99,", "average=0.95,").replace(
        "average=0.99\n", "average=0.95\n")
    body = body.replace("DigitsCNN(num_classes=10,", f"DigitsCNN(num_classes=10, widths=[{widths}],")
    return network + "\n" + body + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--widths", default="16,32,32")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_ensembles")
    args = ap.parse_args()

    import torch

    from dlc.compiler.pipeline import compile_file
    from dlc.runtime.train import loop, report

    torch.set_num_threads(1)
    report.plot_curves = lambda *a, **k: None  # see the docstring: figures only
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    spec = args.out / "digits_ensembles.arch"
    spec.write_text(spec_text(args.size, args.epochs, args.widths.replace(",", ", ")))
    compiled = compile_file(spec)
    assert compiled.ok, compiled.diagnostics
    seconds, found = {}, {}
    for name in TRAINS:
        start = time.perf_counter()
        loop.train(compiled, compiled.trains[name], loop.Options(args.out / name, quiet=True))
        seconds[name] = time.perf_counter() - start
        found[name] = json.loads((args.out / name / "summary.json").read_text())["ensembles"]
        print(f"{name}: {seconds[name]:.0f} s", flush=True)

    members = found["DigitsEnsemble"]
    rows = [("one model (seed 0, best)", members["members"][0], seconds["DigitsEnsemble"] / 5)]
    rows += [("mean of members 2..5, each alone", _mean(members["members"][1:]), None)]
    rows += [(f"prediction average, k={k}", _average_of_first(args.out / "DigitsEnsemble", compiled, k), None)
             for k in (3, 4)]
    rows += [("prediction average, k=5", members["ensemble"], seconds["DigitsEnsemble"])]
    snap = found["DigitsSnapshot"]
    rows += [("snapshot run: its best weights", snap["single"], None),
             ("snapshot run: last snapshot", snap["members"][-1], None),
             (f"snapshot ensemble, {len(snap['members'])} cycles", snap["ensemble"], seconds["DigitsSnapshot"])]
    for name, label in (("DigitsAveraged", "EMA 0.95"), ("DigitsSwa", f"SWA from epoch {args.epochs // 2 + 1}")):
        rows += [(f"{label}: the run's best weights", found[name]["single"], None),
                 (f"{label}: the averaged weights", found[name]["ensemble"], seconds[name])]
    print(f"\ndigits(size={args.size}), DigitsCNN(widths=[{args.widths}]), {args.epochs} epochs per run, "
          "test split (270 images)\n")
    print("| method | test accuracy | test NLL | wall s |\n|---|---:|---:|---:|")
    for label, fig, wall in rows:
        print(f"| {label} | {fig['accuracy']:.4f} | {fig['nll']:.4f} | {'' if wall is None else f'{wall:.0f}'} |")
    (args.out / "train_ensembles.json").write_text(json.dumps({"rows": rows, "seconds": seconds}, indent=2))


def _mean(figs):
    return {k: sum(f[k] for f in figs) / len(figs) for k in ("accuracy", "nll")}


def _average_of_first(run: Path, compiled, k: int) -> dict[str, float]:
    """The prediction average of members 1..k of a `config ensemble` run, on the test split."""
    import torch

    from dlc.compiler.ir.train import options
    from dlc.runtime.train import data as datasets, ensembles
    from dlc.runtime.train.modules import build_steps

    plan = compiled.trains["DigitsEnsemble"]
    test = datasets.load(plan.data.kind, options(plan.data.options)).splits["test"]
    _, models = build_steps(compiled, plan)
    probs = [ensembles.member_predictions(models["net"], plan, ensembles.member_dir(run, i), test, torch.device("cpu"))
             for i in range(k)]
    return ensembles.figures(probs, test[plan.ensembles.target])


if __name__ == "__main__":
    main()
