"""`show gan_score(g, classifier="runs/digits16/best.safetensors", n=1000, confidence=0.9)`: a GAN's
samples judged by a digits classifier (the "classifier score" of the course notes).

    sample    n images from the generator, z ~ N(0, I) of its latent input's shape drawn from the
              show's own generator; a conditional generator (z, labels) gets the labels 0, 1, ..,
              k-1 in turn, so each class is asked for n / k times
    classify  the samples (a tanh generator's [-1, 1] mapped to [0, 1] when the data are in
              [-1, 1], then resized bilinearly to the classifier's input size) with the classifier
              of the checkpoint: its metadata names the spec, the training definition and the
              network (`dlc train` writes them), which are compiled and built as they were trained
    figures   confident   share of samples whose top class has probability >= `confidence`
              classes     number of classes that are the top class of a confident sample
              real_confident   the same share for the scored split's real images: the ceiling
                          the classifier allows
              fid         Fréchet distance between Gaussians fitted to the classifier's penultimate
                          features (the input of its last linear layer: for DigitsCNN the
                          global_avgpool output) of the samples and of the split's real images:
                          |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2)) (an FID with a digits
                          classifier instead of Inception; comparable only between runs that use
                          the same classifier)
              match, match_<c>   conditional generators only: share of samples classified as the
                          class they were asked for, overall and per class
    file      samples/<name>_<epoch>.png, a bar chart of the top classes of the confident samples
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..evals import Context, measure
from ..modules import TrainError

_CLASSIFIERS: dict[tuple[str, float], tuple[nn.Module, tuple[int, int]]] = {}


@measure("gan_score")
def gan_score(ctx: Context) -> dict[str, float]:
    o = ctx.options
    classifier, size = load_classifier(Path(o["classifier"]), ctx.device)
    real = _real_images(ctx)
    tanh = float(real.min()) < -1e-3  # the data (and so the generator) are in [-1, 1]
    images, asked = sample(ctx.module, ctx.show.shape, _classes(ctx), o["n"], ctx.gen, ctx.device, ctx.batch)
    probs, feats = classify(classifier, images, size, tanh, ctx.batch, ctx.device)
    real_probs, real_feats = classify(classifier, torch.from_numpy(real), size, tanh, ctx.batch, ctx.device)
    top, pred = probs.max(1)
    sure = top >= o["confidence"]
    k = probs.shape[1]
    counts = np.bincount(pred[sure].numpy(), minlength=k)
    figures: dict[str, float] = {"confident": float(sure.float().mean()), "classes": float((counts > 0).sum()),
                                 "real_confident": float((real_probs.max(1).values >= o["confidence"]).float().mean()),
                                 "fid": frechet_distance(feats.numpy(), real_feats.numpy())}
    if asked is not None:
        hit = (pred == asked).float()
        figures["match"] = float(hit.mean())
        for c in range(int(asked.max()) + 1):
            figures[f"match_{c}"] = float(hit[asked == c].mean())
    names = list(ctx.meta.get("classes", []))[:k]
    _bar_chart(counts, names + [str(i) for i in range(len(names), k)], ctx.path(".png"),
               f"{ctx.show.model}: classes of {int(sure.sum())} of {len(sure)} samples with confidence "
               f">= {o['confidence']:g} ({ctx.split_name}, epoch {ctx.epoch})")
    return figures


def _classes(ctx: Context) -> int:
    """0 for an unconditional generator; else its number of classes."""
    if len(ctx.show.feeds) < 2:
        return 0
    k = ctx.show.levels or len(ctx.meta.get("classes", ()))
    if not k:
        raise TrainError(f"show `{ctx.show.name}`: the conditional generator's number of classes is unknown "
                         "(the data set names no classes)")
    return k


def _real_images(ctx: Context) -> np.ndarray:
    """The split's images: its float field of (N, C, H, W) examples (`image` if there are several)."""
    fields = [f for f, a in ctx.split.items() if a.ndim == 4 and a.dtype.kind == "f"]
    if not fields:
        raise TrainError(f"show `{ctx.show.name}`: the {ctx.split_name} split has no image field to compare with")
    return ctx.split["image" if "image" in fields else fields[0]]


@torch.no_grad()
def sample(generator: nn.Module, shape: tuple[int, ...], classes: int, n: int, gen: torch.Generator,
           device: torch.device, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples (CPU) and, for a conditional generator (classes > 0), the labels they were asked for."""
    z = torch.randn((n, *shape), generator=gen)
    labels = torch.arange(n) % classes if classes else None
    out = []
    for start in range(0, n, batch):
        args = [z[start:start + batch].to(device)]
        if labels is not None:
            args.append(labels[start:start + batch].to(device))
        result = generator(*args)
        out.append((result[0] if isinstance(result, tuple) else result).float().cpu())
    return torch.cat(out), labels


@torch.no_grad()
def classify(classifier: nn.Module, images: torch.Tensor, size: tuple[int, int], tanh: bool, batch: int,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(class probabilities, penultimate features) of images (N, C, H, W), on the CPU."""
    last = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise TrainError("the gan_score classifier has no linear layer whose input could be its features")
    captured: list[torch.Tensor] = []
    hook = last[-1].register_forward_hook(lambda mod, inputs, output: captured.append(inputs[0].flatten(1).cpu()))
    probs = []
    try:
        for start in range(0, len(images), batch):
            x = images[start:start + batch].float()
            if tanh:
                x = (x + 1) / 2
            if tuple(x.shape[2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            logits = classifier(x.to(device))
            probs.append(torch.softmax((logits[0] if isinstance(logits, tuple) else logits).float(), 1).cpu())
    finally:
        hook.remove()
    return torch.cat(probs), torch.cat(captured)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to the rows of a and of b (features)."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # a singular product (dead ReLU features) is expected: handled below
        warnings.simplefilter("ignore")
        root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
        if not np.isfinite(root).all():  # nudge both covariances, as the FID reference implementation does
            eps = np.eye(len(cov_a)) * 1e-6
            root, _ = linalg.sqrtm((cov_a + eps) @ (cov_b + eps), disp=False)
    root = np.real(root)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))
    return max(value, 0.0)


def load_classifier(path: Path, device: torch.device) -> tuple[nn.Module, tuple[int, int]]:
    """The classifier of a `dlc train` checkpoint, in eval mode, and its input (H, W); cached per file."""
    if not path.exists():
        raise TrainError(f"gan_score: no classifier checkpoint `{path}` (train it first, e.g. "
                         "`dlc train spec/digits_cnn.arch --train Digits -o runs/digits`)")
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = _build_classifier(path)
    module, size = _CLASSIFIERS[key]
    return module.to(device).eval(), size


def _build_classifier(path: Path) -> tuple[nn.Module, tuple[int, int]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from dlc.compiler.pipeline import compile_file

    from .. import modules

    with safe_open(str(path), "pt") as f:
        meta: dict[str, Any] = f.metadata() or {}
    missing = [k for k in ("dlc_spec", "dlc_train", "dlc_network") if k not in meta]
    if missing:
        raise TrainError(f"gan_score: the checkpoint `{path}` was not written by `dlc train` (its metadata "
                         f"lacks {', '.join(missing)})")
    spec = Path(meta["dlc_spec"])
    if not spec.exists():
        raise TrainError(f"gan_score: the classifier's spec `{spec}` (named by `{path}`) is not found from here")
    compilation = compile_file(spec)
    compilation.raise_for_errors()
    plan = compilation.trains.get(meta["dlc_train"])
    if plan is None:
        raise TrainError(f"gan_score: `{spec}` has no training definition `{meta['dlc_train']}` any more")
    model = next((m for m in plan.models if m.network == meta["dlc_network"]), None)
    if model is None:
        raise TrainError(f"gan_score: train `{plan.name}` of `{spec}` trains no network {meta['dlc_network']}")
    _, built = modules.build_steps(compilation, plan)
    net = built[model.name]
    net.load_state_dict(load_file(str(path)), strict=False)
    sizes = [tuple(st.graph.type_of(c.inputs[0]).shape[2:]) for st in plan.steps for c in st.graph.calls
             if c.parent == "" and c.frame.path == model.name]
    dims = sizes[0] if sizes else ()
    if len(dims) != 2 or not all(d.is_const for d in dims):
        raise TrainError(f"gan_score: the classifier {model.network} does not take images of a static size")
    return net.eval(), (dims[0].value, dims[1].value)


def _bar_chart(counts: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    from .. import report

    fig = Figure(figsize=(max(4.0, 0.45 * len(counts) + 2.0), 3.2), layout="constrained")
    ax = fig.subplots()
    ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.set_xticks(range(len(counts)), labels=labels)
    ax.set_xlabel("class (the classifier's top class)")
    ax.set_ylabel("samples")
    ax.set_title(title, fontsize=8)
    ax.set_ylim(0, max(1, math.ceil(counts.max(initial=0) * 1.1)))
    report._save_figure(fig, path)
