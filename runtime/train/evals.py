"""Shows that measure: a `show` kind registered here computes figures (BLEU, a GAN's classifier
score, verification accuracy, nearest neighbours...) from the models and a split, and may write
files beside them (a table, a picture).

The loop runs each one after every `every`-th epoch on the validation split (figures go into that
epoch's record in metrics.jsonl under "shows") and once at the end, with the best weights, on the
test split (figures go into summary.json under "shows", and into the final "test" record).

A measure is a function of a `Context` that returns {figure name: float}; register it with
`@measure("kind")`, and give the kind its arguments in compiler/passes/train.py's SHOWS table.
Measures draw random numbers from `ctx.gen` only (seeded by seed and epoch), never from the global
RNG, so that a resumed run takes the same random numbers as one never stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from dlc.compiler.ir.train import ShowPlan, options


@dataclass
class Context:
    show: ShowPlan
    models: Mapping[str, nn.Module]  # every model of the definition, by its `model` name
    split: Mapping[str, np.ndarray]  # val during the epochs, test at the end
    split_name: str
    out: Path  # the run's folder
    epoch: int  # the epoch just finished; at the end, the last epoch
    final: bool  # the end-of-run measurement with the best weights, on the test split
    device: torch.device
    batch: int  # `config eval_batch`
    gen: torch.Generator  # CPU generator, seeded by (seed, epoch)
    meta: Mapping[str, Any]  # the data set's meta (classes, vocabulary, ...)
    splits: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)  # every split, by name: a
    # measure that calibrates on val (a verification threshold) reads it at the end, on test

    @property
    def options(self) -> dict[str, Any]:
        return options(self.show.options)

    @property
    def module(self) -> nn.Module:
        """The show's model, or the part of it it names (`show kind(model.part)`)."""
        module = self.models[self.show.model]
        for part in self.show.child.split(".") if self.show.child else ():
            module = getattr(module, part)
        return module

    def path(self, suffix: str) -> Path:
        """Where this show writes its file for this epoch (or for the final measurement)."""
        tag = "test" if self.final else f"epoch{self.epoch:03d}"
        folder = self.out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self.show.name}_{tag}{suffix}"


Measure = Callable[[Context], dict[str, float]]
MEASURES: dict[str, Measure] = {}


def measure(kind: str) -> Callable[[Measure], Measure]:
    def register(fn: Measure) -> Measure:
        assert kind not in MEASURES, kind
        MEASURES[kind] = fn
        return fn
    return register


def run(ctx: Context) -> dict[str, float]:
    """The show's figures, with every model in eval mode and no gradients; modes restored after."""
    _load_measures()
    modes = {name: m.training for name, m in ctx.models.items()}
    for m in ctx.models.values():
        m.eval()
    try:
        with torch.no_grad():
            figures = MEASURES[ctx.show.kind](ctx)
    finally:
        for name, m in ctx.models.items():
            m.train(modes[name])
    return {k: float(v) for k, v in figures.items()}


def is_measure(kind: str) -> bool:
    _load_measures()
    return kind in MEASURES


def _load_measures() -> None:
    """The modules that register measures (imported here, so that each registers once)."""
    from . import measures  # noqa: F401
