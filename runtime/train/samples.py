"""What a training run shows after each epoch: samples from generative models, reconstructions, a
confusion matrix, generated text (the `show` statements of a training definition).

Sampling draws from its own generator, seeded by (seed, epoch), never from the global RNG that
dropout and the reparameterization use: a run resumed from a checkpoint takes exactly the random
numbers an uninterrupted one takes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from dlc.compiler.ir.train import ShowPlan, options

from . import report


def _module(models: Mapping[str, nn.Module], show: ShowPlan) -> nn.Module:
    module = models[show.model]
    for part in show.child.split(".") if show.child else ():
        module = getattr(module, part)
    return module


def _first(result):
    return result[0] if isinstance(result, tuple) else result


@torch.no_grad()
def make(show: ShowPlan, models: Mapping[str, nn.Module], test: Mapping[str, np.ndarray], out: Path,
         epoch: int, seed: int, device: torch.device, data_meta: Mapping) -> Path:
    """Write the picture (or text) of `show` for `epoch`; returns its path."""
    o = options(show.options)
    gen = torch.Generator(device="cpu").manual_seed(seed * 1000 + epoch)
    module = _module(models, show)
    was = module.training
    module.eval()
    try:
        folder = out / "samples"
        stem = folder / f"{show.name}_epoch{epoch:03d}"
        if show.kind == "prior" and len(show.feeds) == 2:  # a conditional generator (z, labels): a row per class
            k = show.levels or len(data_meta.get("classes", ())) or 10
            per = max(1, o["n"] // k)
            z = torch.randn((k * per, *show.shape), generator=gen).to(device)
            labels = torch.arange(k).repeat_interleave(per).to(device)
            images = _first(module(z, labels)).float().cpu().numpy()
            report.image_grid(_unit(images), stem.with_suffix(".png"),
                              f"{show.model}: samples, a row per class 0-{k - 1}, epoch {epoch}", nrow=per)
            return stem.with_suffix(".png")
        if show.kind == "prior":
            z = torch.randn((o["n"], *show.shape), generator=gen).to(device)
            images = _first(module(z)).float().cpu().numpy()
            report.image_grid(_unit(images), stem.with_suffix(".png"), f"{show.model}: samples from the prior, epoch {epoch}")
            return stem.with_suffix(".png")
        if show.kind == "reconstruct":
            x = torch.from_numpy(test[show.feeds[0]][: o["n"]]).to(device)
            y = _first(module(x)).float().cpu().numpy()
            report.pairs_grid(_unit(x.cpu().numpy()), _unit(y), stem.with_suffix(".png"),
                              f"{show.model}: test images and reconstructions, epoch {epoch}")
            return stem.with_suffix(".png")
        if show.kind == "autoregressive":
            images = autoregressive(module, o["n"], show.shape, show.levels, o["temperature"], gen, device)
            report.image_grid(images, stem.with_suffix(".png"), f"{show.model}: samples, epoch {epoch}")
            return stem.with_suffix(".png")
        if show.kind == "generate":
            text = generate(module, o["prompt"], o["length"], show.shape[0] if show.shape else 128,
                            o["temperature"], gen, device)
            report.write_text(text, stem.with_suffix(".txt"))
            return stem.with_suffix(".txt")
        raise AssertionError(show.kind)
    finally:
        module.train(was)


def _unit(images: np.ndarray) -> np.ndarray:
    """Images for a grid: [-1, 1] outputs (tanh) mapped to [0, 1]; [0, 1] ones kept."""
    return (images + 1) / 2 if images.min() < -1e-3 else images


def autoregressive(module: nn.Module, n: int, shape: tuple[int, ...], levels: int, temperature: float,
                   gen: torch.Generator, device: torch.device) -> np.ndarray:
    """PixelCNN sampling in raster order: pixel (i, j) drawn from softmax(logits[:, :, i, j] / T),
    intensities k / (levels - 1)."""
    c, h, w = shape
    x = torch.zeros((n, c, h, w), device=device)
    for i in range(h):
        for j in range(w):
            logits = _first(module(x))[:, :, i, j] / temperature
            probs = torch.softmax(logits.float(), dim=1).cpu()
            k = torch.multinomial(probs, 1, generator=gen).squeeze(1)
            x[:, 0, i, j] = (k.float() / (levels - 1)).to(device)
    return x.cpu().numpy()


def generate(module: nn.Module, prompt: str, length: int, window: int, temperature: float,
             gen: torch.Generator, device: torch.device) -> str:
    """Byte-level text: the prompt, then `length` bytes each drawn from the model's next-byte distribution."""
    ids = list(prompt.encode("utf-8")) or [ord("\n")]
    for _ in range(length):
        ctx = torch.tensor([ids[-window:]], dtype=torch.int64, device=device)
        logits = _first(module(ctx))[0, -1].float() / temperature
        ids.append(int(torch.multinomial(torch.softmax(logits, 0).cpu(), 1, generator=gen)))
    return bytes(b % 256 for b in ids).decode("utf-8", "replace")


@torch.no_grad()
def confusion(show: ShowPlan, models: Mapping[str, nn.Module], split: Mapping[str, np.ndarray], batch: int,
              device: torch.device) -> np.ndarray:
    """Counts of (true class, predicted class) over a split."""
    o = options(show.options)
    module = models[show.model]
    was = module.training
    module.eval()
    preds = []
    n = len(split[o["target"]])
    for start in range(0, n, batch):
        args = [torch.from_numpy(split[f][start:start + batch]).to(device) for f in show.feeds]
        preds.append(_first(module(*args)).argmax(1).cpu().numpy())
    module.train(was)
    pred = np.concatenate(preds)
    true = split[o["target"]]
    k = int(max(pred.max(initial=0), true.max(initial=0))) + 1
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix
