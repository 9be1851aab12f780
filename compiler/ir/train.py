"""The checked form of a `train` definition: what `dlc train` runs, decided before any data is read.

A `TrainPlan` names its data (kind and options), the models it trains (each a network of the
spec with its parameter values, optional starting checkpoint and frozen parts), its steps, and
what it shows. Each step's objective is a typed graph of the ordinary IR (compiler/ir/graph.py):
the step network that the train pass synthesizes, whose inputs are data fields, whose layer
values are the models (weights under `<model>.`), and whose outputs are `loss` (minimized) and
metrics, all scalars. Everything is frozen; values are the evaluator's (lists as tuples).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..source import Span
from .graph import Graph


@dataclass(frozen=True, slots=True)
class Option:
    """A named setting with its checked value: `lr=1e-3`."""

    name: str
    value: Any


def options(items: tuple[Option, ...]) -> dict[str, Any]:
    return {o.name: o.value for o in items}


@dataclass(frozen=True, slots=True)
class DataInput:
    """A step input read from a data field: its declared dtype and dims (a str is a symbol)."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]
    span: Span
    classes: int | None = None  # the class width of the logits this field is compared with, when static


@dataclass(frozen=True, slots=True)
class DataPlan:
    kind: str  # digits | text | npz | images
    options: tuple[Option, ...]
    inputs: tuple[DataInput, ...]  # every field some step reads
    span: Span


@dataclass(frozen=True, slots=True)
class ModelPlan:
    name: str  # the model's name in the train definition: its weights are `<name>.` in the step graphs
    network: str
    module: str  # the file that defines the network
    args: tuple[tuple[str, Any], ...]  # the network's parameter values
    weights_from: str | None  # a checkpoint to start from (`from "..."`)
    freeze: tuple[str, ...]  # module paths (or weight names) whose weights do not train
    weights: tuple[tuple[str, tuple[int, ...], bool], ...]  # (name in the network, shape, trainable)
    span: Span


@dataclass(frozen=True, slots=True)
class OptimizerPlan:
    kind: str  # sgd | adam | adamw | rmsprop
    options: tuple[Option, ...]
    models: tuple[str, ...]  # whose parameters it updates
    schedule: str  # constant | step | cosine
    schedule_options: tuple[Option, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class StepPlan:
    name: str  # "main" for a definition without `step` blocks
    graph: Graph  # inputs are data fields; outputs are `loss` and metrics, scalars
    optimizer: OptimizerPlan
    every: int  # runs on every `every`-th batch
    models: tuple[str, ...]  # the models its graph uses
    higher_is_better: tuple[str, ...]  # outputs to maximize when chosen as `best` (accuracies)
    span: Span
    unroll: int = 0  # `step generator(unroll=k)`: its loss against the rivals after k of their steps (unroll.py)


@dataclass(frozen=True, slots=True)
class ShowPlan:
    """A picture or text made from the models after each epoch (or, for `confusion`, on the test split)."""

    kind: str  # confusion | reconstruct | prior | autoregressive | generate
    name: str  # file name stem
    model: str
    child: str  # module path inside the model ("" for the model itself): `prior(vae.decoder)`
    feeds: tuple[str, ...]  # data fields the model's inputs are read from (confusion, reconstruct)
    options: tuple[Option, ...]
    shape: tuple[int, ...]  # per-example input shape of what is sampled (prior: latent; autoregressive: image)
    levels: int  # autoregressive: values per pixel; generate: vocabulary
    span: Span


@dataclass(frozen=True, slots=True)
class TrainConfig:
    batch: int
    epochs: int
    seed: int
    best: str  # the validation metric that picks `best`
    best_higher: bool
    clip_grad: float | None
    checkpoint_every: int  # steps between mid-epoch checkpoints (0: at the end of each epoch only)
    eval_batch: int
    test_each_epoch: bool  # also report the test split's metrics every epoch (never used to choose `best`)


@dataclass(frozen=True, slots=True)
class EnsemblePlan:
    """Ensembles of the definition's one classifier (runtime/train/ensembles.py): `config ensemble=k`
    trains k copies (seeds seed..seed+k-1), `schedule cyclic(cycles=M)` keeps a snapshot per cycle,
    `config average=...` keeps an average of the weights; the first two average softmax predictions."""

    model: str  # the classifier whose logits (B, classes) are averaged
    feeds: tuple[str, ...]  # the data fields it reads, in the order of its inputs
    target: str  # the class-index field its logits are compared with
    members: int  # `config ensemble`: independently trained copies (1: none)
    average: str | None  # "ema" | "swa" | None
    decay: float  # EMA: avg <- decay * avg + (1 - decay) * w after each optimizer step
    average_from: int  # SWA: the first epoch whose steps are averaged
    cycles: int  # `schedule cyclic(cycles=M)`: M snapshots; 0 without it
    span: Span


@dataclass(frozen=True, slots=True)
class TrainPlan:
    name: str
    path: str  # the spec file
    data: DataPlan
    models: tuple[ModelPlan, ...]
    steps: tuple[StepPlan, ...]
    shows: tuple[ShowPlan, ...]
    config: TrainConfig
    span: Span
    ensembles: EnsemblePlan | None = None  # config ensemble / average, schedule cyclic

    def model(self, name: str) -> ModelPlan:
        return next(m for m in self.models if m.name == name)
