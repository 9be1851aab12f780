"""The GANs of the zoo trained on the digits and judged by the digits classifier (`show gan_score`).

    python benchmarks/train_gans.py [--out DIR] [--epochs N] [--only dcgan,cgan,acgan,unrolled,wgangp]

First `dlc train spec/digits_cnn.arch --train DigitsJudge` (the classifier at the GANs' 16x16,
without label smoothing; kept in DIR/runs/digits16 and reused when it is there), then each GAN as
a user runs it, from DIR (so that the definitions' `classifier="runs/digits16/best.safetensors"`
is found): DCGANDigits, CGANDigits, ACGANDigits,
UnrolledGANDigits (spec/dcgan.arch) and WGANGPDigits (spec/wgan.arch, when it has a gan_score
show: else it is scored here with the same measure). `--epochs N` trains every GAN N epochs
instead of its definition's count. Figures come from each run's summary.json (the final
measurement: 1,000 samples, the test split's real images for the distance):

    confident  share of samples the classifier labels with probability >= 0.9 (goal, DCGAN: >= 80 %)
    classes    classes among the confident samples (goal: all 10)
    fid        Fréchet distance of the classifier's penultimate features, samples vs real test images
    match      conditional GANs: share classified as the class asked for (and per class)

A first row scores real test digits the same way (the ceiling the classifier allows). Printed as a Markdown table; all figures
also in DIR/train_gans.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # key: (spec, train definition)
    "dcgan": ("spec/dcgan.arch", "DCGANDigits"),
    "cgan": ("spec/cgan.arch", "CGANDigits"),
    "acgan": ("spec/acgan.arch", "ACGANDigits"),
    "unrolled": ("spec/dcgan.arch", "UnrolledGANDigits"),
    "wgangp": ("spec/wgan.arch", "WGANGPDigits"),
}


def dlc(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlc", *args], cwd=cwd, check=True)
    return time.perf_counter() - start


def score_afterwards(out: Path, spec: str, name: str, run: Path) -> dict[str, float]:
    """gan_score of a finished run whose definition has no gan_score show (its `last` generator)."""
    import torch
    from safetensors.torch import load_file

    from dlc.compiler.ir.train import Option, ShowPlan
    from dlc.compiler.pipeline import compile_file
    from dlc.runtime.train import data as datasets, evals
    from dlc.runtime.train.modules import build_steps

    compilation = compile_file(ROOT / spec)
    plan = compilation.trains[name]
    _, models = build_steps(compilation, plan)
    gen = next(m for m in plan.models if m.name in ("g", "generator"))
    models[gen.name].load_state_dict(load_file(str(run / f"last.{gen.name}.safetensors")), strict=False)
    z = next(st.graph for st in plan.steps)
    call = next(c for c in z.calls if c.parent == "" and c.frame.path == gen.name)
    shape = tuple(d.value for d in z.type_of(call.inputs[0]).shape[1:])
    show = ShowPlan("gan_score", "gan_score", gen.name, "", ("",), (
        Option("classifier", str(out / "runs/digits16/best.safetensors")), Option("n", 1000),
        Option("confidence", 0.9), Option("every", 1)), shape, 0, plan.span)
    data = datasets.load(plan.data.kind, dict((o.name, o.value) for o in plan.data.options))
    ctx = evals.Context(show, models, data.splits["test"], "test", run, plan.config.epochs, True,
                        torch.device("cpu"), 256, torch.Generator().manual_seed(0), data.meta)
    return evals.run(ctx)


def score_real(out: Path, size: int) -> dict[str, float]:
    """The same figures for real digits (the test split at the GANs' size, scaled to [-1, 1]): the
    ceiling the classifier allows; the distance is the validation split's images against the test
    split's, the floor of the FID-style distance."""
    import numpy as np
    import torch

    from dlc.runtime.train import data as datasets
    from dlc.runtime.train.measures import gan

    net, shape = gan.load_classifier(out / "runs/digits16/best.safetensors", torch.device("cpu"))
    splits = datasets.load("digits", {"size": size, "scale": "tanh"}).splits
    feats = {}
    for split in ("val", "test"):
        probs, feats[split] = gan.classify(net, torch.from_numpy(splits[split]["image"]), shape, True, 256,
                                           torch.device("cpu"))
    top, pred = probs.max(1)
    sure = top >= 0.9
    return {"train": f"real test digits ({size}x{size})", "epochs": "-", "seconds": "-",
            "confident": float(sure.float().mean()), "classes": float(len(np.unique(pred[sure].numpy()))),
            "fid": gan.frechet_distance(feats["test"].numpy(), feats["val"].numpy()),
            "match": float((pred.numpy() == splits["test"]["label"]).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dlc_train_gans"))
    ap.add_argument("--epochs", type=int, help="epochs of every GAN (default: each definition's own)")
    ap.add_argument("--only", default="dcgan,cgan,acgan,unrolled,wgangp", help="comma-separated; empty: the "
                    "classifier and the real digits' reference row only")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict] = {}

    classifier = out / "runs/digits16"
    if not (classifier / "best.safetensors").exists():
        seconds = dlc("train", str(ROOT / "spec/digits_cnn.arch"), "--train", "DigitsJudge", "-o", str(classifier),
                      "--quiet", cwd=out)
    else:
        seconds = None
    summary = json.loads((classifier / "summary.json").read_text())
    figures["classifier"] = {"test_accuracy": summary["test"]["accuracy"], "seconds": seconds}

    figures["real"] = score_real(out, 16)
    for key in [k for k in args.only.split(",") if k]:
        spec, name = RUNS[key]
        if name not in (ROOT / spec).read_text():
            print(f"{key}: `train {name}` is not in {spec} (yet); skipped", file=sys.stderr)
            continue
        run = out / key
        extra = ["--epochs", str(args.epochs)] if args.epochs else []
        try:
            seconds = dlc("train", str(ROOT / spec), "--train", name, "-o", str(run), "--quiet", *extra, cwd=out)
        except subprocess.CalledProcessError as err:
            print(f"{key}: `dlc train` failed ({err.returncode}); skipped", file=sys.stderr)
            continue
        summary = json.loads((run / "summary.json").read_text())
        score = summary["shows"].get("gan_score") or score_afterwards(out, spec, name, run)
        figures[key] = {"train": name, "epochs": summary["epochs"], "seconds": round(seconds, 1), **score}

    json_path = out / "train_gans.json"
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    c = figures["classifier"]
    print(f"\nclassifier: DigitsJudge, test accuracy {c['test_accuracy']:.4f}"
          + (f", {c['seconds']:.0f} s" if c["seconds"] else " (reused)"))
    print("\n| GAN | epochs | seconds | confident (p >= 0.9) | classes | FID-style distance | match |")
    print("|---|---|---|---|---|---|---|")
    for key, f in figures.items():
        if key == "classifier":
            continue
        match = f"{f['match']:.3f}" if "match" in f else "-"
        print(f"| {f['train']} | {f['epochs']} | {f['seconds']} | {f['confident']:.3f} | {int(f['classes'])} | "
              f"{f['fid']:.3f} | {match} |")
    print("\n(the real digits' `match` is the classifier's accuracy on them)")
    for key, f in figures.items():
        if key not in ("classifier", "real") and "match" in f:
            per = ", ".join(f"{c}: {f[f'match_{c}']:.2f}" for c in range(10) if f"match_{c}" in f)
            print(f"\n{f['train']}, share classified as the class asked for: {per}")
    print(f"\n(figures in {json_path})")


if __name__ == "__main__":
    main()
