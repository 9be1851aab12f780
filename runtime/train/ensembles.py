"""Ensembles of one classifier (course notes, "Ensemble"): several models whose softmax predictions
are averaged, or one model whose weights are averaged. The train pass checks the settings into an
`EnsemblePlan` (one model, one step, class logits compared with a class-index field).

    config ensemble=k          k copies trained independently, one after the other, with seeds
                               seed..seed+k-1 (initialization, dropout and data order all differ); each
                               is a complete run in <run>/member<i>/; then their `best` weights predict
                               together: the mean of the k softmax outputs (prediction averaging)
    schedule cyclic(cycles=M)  cosine annealing restarted M times (Huang et al. 2017, "Snapshot
                               ensembles", eq. 2): cycle c spans optimizer steps [c*T//M, (c+1)*T//M)
                               of the T steps (ceil(T/M) each when M divides T, as in the paper); the
                               weights at the end of each cycle are <run>/snapshots/cycle<c>.safetensors,
                               and at the end the M snapshots predict together like k members
    config average=0.999       an exponential moving average of the parameters after every optimizer
                               step, avg <- d * avg + (1 - d) * w, starting from the initial weights
    config average="swa"       the uniform average of the parameters after every optimizer step from
                               epoch `average_from` on (Izmailov et al. 2018)

The average is kept beside the model: in last.state.pt (a resume goes on with it exactly), evaluated on
val after every epoch (metrics `avg.<output>` in the epoch's "val" record), written as
<run>/average.safetensors. Averaged parameters have no batch-norm statistics of their own, so before
each evaluation and each write they are recomputed the way torch.optim.swa_utils.update_bn does:
running statistics reset, momentum None (a cumulative average), one pass over the training split in
train mode; under a forked RNG, so that dropout in that pass leaves the run's random stream alone.

Figures (summary.json "ensembles"): accuracy of the argmax of the mean probability and the NLL
-mean log p(label) of it, over the test split, for the ensemble, each member, and one model alone.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from dlc.compiler.ir.train import EnsemblePlan, TrainPlan, options

from . import checkpoints, report
from .modules import TrainError, build_steps, model_state

if TYPE_CHECKING:
    from dlc.compiler.pipeline import Compilation

    from .loop import Options, Result

Split = Mapping[str, np.ndarray]


# --- the cyclic schedule and its snapshots ------------------------------------------------------------------

def cycle_bounds(total_steps: int, cycles: int) -> list[int]:
    """The optimizer steps where the cycles start, and `total_steps` at the end: M + 1 numbers."""
    return [c * total_steps // cycles for c in range(cycles + 1)]


def cyclic_factor(step: int, total_steps: int, cycles: int, floor: float = 0.0) -> float:
    """The lr factor of optimizer step `step` (from 0): 1/2 (1 + cos(pi * t / L)) at step t of a cycle of
    L steps, from 1 down towards `floor` (min_lr / lr); Huang et al.'s alpha(t) with alpha_0 = lr."""
    bounds = cycle_bounds(total_steps, cycles)
    c = min(cycles - 1, max(0, sum(b <= step for b in bounds) - 1))
    start, end = bounds[c], bounds[c + 1]
    progress = (step - start) / max(1, end - start)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def snapshot_cycle(steps_done: int, total_steps: int, cycles: int) -> int | None:
    """The cycle (from 1) that ends once `steps_done` optimizer steps are done, or None."""
    bounds = cycle_bounds(total_steps, cycles)
    return bounds.index(steps_done) if steps_done in bounds[1:] else None


def snapshot_paths(out: Path) -> list[Path]:
    return sorted((out / "snapshots").glob("cycle*.safetensors"))


# --- predictions and their average ----------------------------------------------------------------------------

@torch.no_grad()
def predict(module: nn.Module, split: Split, feeds: Sequence[str], batch: int, device: torch.device) -> torch.Tensor:
    """The softmax of the module's first output over a split, (N, classes) float64 on the CPU, in eval mode."""
    was = module.training
    module.eval()
    probs = []
    for start in range(0, len(split[feeds[0]]), batch):
        args = [torch.from_numpy(split[f][start:start + batch]).to(device) for f in feeds]
        logits = module(*args)
        logits = logits[0] if isinstance(logits, tuple) else logits  # (B, classes)
        probs.append(torch.softmax(logits.double(), dim=1).cpu())
    module.train(was)
    return torch.cat(probs)


def figures(probs: Sequence[torch.Tensor], labels: np.ndarray) -> dict[str, float]:
    """Accuracy and NLL of the mean of the members' probabilities (one member: that model's own)."""
    mean = torch.stack(list(probs)).mean(0)  # (N, classes)
    y = torch.from_numpy(np.asarray(labels)).long()
    picked = mean[torch.arange(len(y)), y]
    return {"accuracy": float((mean.argmax(1) == y).double().mean()),
            "nll": float(-picked.clamp_min(1e-12).log().mean())}


def each_and_all(probs: Sequence[torch.Tensor], labels: np.ndarray) -> dict[str, Any]:
    return {"ensemble": figures(probs, labels), "members": [figures([p], labels) for p in probs]}


# --- the weight average -----------------------------------------------------------------------------------------

class WeightAverage:
    """A running average of a module's parameters: EMA with `decay`, or uniform (SWA) from `start` epoch."""

    def __init__(self, module: nn.Module, kind: str, decay: float, start: int) -> None:
        self.kind, self.decay, self.start = kind, decay, start
        self.count = 0  # updates so far
        self.params: dict[str, torch.Tensor] = {}
        if kind == "ema":  # the EMA starts at the initial weights
            self.params = {n: p.detach().clone() for n, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: nn.Module, epoch: int) -> None:
        if self.kind == "swa" and epoch < self.start:
            return
        self.count += 1
        for name, p in module.named_parameters():
            if self.kind == "ema":
                self.params[name].mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)
            elif self.count == 1:
                self.params[name] = p.detach().clone()
            else:
                avg = self.params[name]
                avg.add_(p.detach() - avg, alpha=1 / self.count)

    @property
    def ready(self) -> bool:
        return bool(self.params)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "params": {k: v.detach().cpu().clone() for k, v in self.params.items()}}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.count = int(state["count"])
        self.params = {k: v.to(device) for k, v in state["params"].items()}


@torch.no_grad()
def recompute_batchnorm(module: nn.Module, split: Split, feeds: Sequence[str], batch: int,
                        device: torch.device) -> None:
    """Batch-norm running statistics recomputed from one pass over `split` (torch.optim.swa_utils.update_bn)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = {}
    for m in norms:
        m.reset_running_stats()
        momenta[m], m.momentum = m.momentum, None  # None: a cumulative average over the pass
    was = module.training
    module.train()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for start in range(0, len(split[feeds[0]]), batch):
            module(*[torch.from_numpy(split[f][start:start + batch]).to(device) for f in feeds])
    for m in norms:
        m.momentum = momenta[m]
    module.train(was)


# --- what the loop keeps beside the model ---------------------------------------------------------------------

class Ensembling:
    """The loop's hooks for `schedule cyclic` (a snapshot per cycle) and `config average` (a weight
    average beside the model); every method does nothing for a definition without them."""

    def __init__(self, plan: TrainPlan, models: Mapping[str, nn.Module], splits: Mapping[str, Split],
                 total_steps: int, out: Path, device: torch.device, main: bool) -> None:
        self.e: EnsemblePlan | None = plan.ensembles
        self.plan, self.splits, self.total, self.out, self.device, self.main = plan, splits, total_steps, out, device, main
        self.module = models[self.e.model] if self.e else None
        self.average = WeightAverage(self.module, self.e.average, self.e.decay, self.e.average_from) \
            if self.e and self.e.average else None
        if self.e and self.e.cycles > total_steps:
            raise TrainError(f"`schedule cyclic(cycles={self.e.cycles})` needs at least one optimizer step per "
                             f"cycle; the run has {total_steps}")

    def after_step(self, steps_done: int, epoch: int) -> None:
        """After each optimizer step: the average moves; at a cycle's end, its snapshot is written."""
        if self.average is not None:
            self.average.update(self.module, epoch)
        cycle = snapshot_cycle(steps_done, self.total, self.e.cycles) if self.e and self.e.cycles else None
        if cycle is not None and self.main:
            self._write(self.out / "snapshots" / f"cycle{cycle:02d}.safetensors", steps_done)

    def val_metrics(self, evaluate_val: Callable[[], dict[str, float]]) -> dict[str, float]:
        """The step's val metrics with the averaged weights, as `avg.<name>` (none before SWA starts)."""
        if self.average is None or not self.average.ready:
            return {}
        with self.averaged():
            return {f"avg.{k}": v for k, v in evaluate_val().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average.state_dict()} if self.average is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.average is not None:
            self.average.load_state_dict(state["average"], self.device)

    def save(self, steps_done: int) -> None:
        """<run>/average.safetensors, with its batch-norm statistics recomputed (process 0, with `last`)."""
        if self.average is not None and self.average.ready and self.main:
            with self.averaged():
                self._write(self.out / "average.safetensors", steps_done)

    def final(self) -> dict[str, Any]:
        """summary.json's "ensembles" on the test split: the model (its `best` weights, loaded by the loop)
        beside the snapshots' prediction average or the averaged weights."""
        if self.e is None or not (self.e.cycles or self.average):
            return {}
        test = self.splits["test"]
        labels = test[self.e.target]
        found: dict[str, Any] = {"kind": "snapshots" if self.e.cycles else self.e.average,
                                 "single": figures([self._predict(test)], labels)}
        if self.e.cycles:
            live = {k: v.clone() for k, v in self.module.state_dict().items()}
            probs = [self._predict(test, path) for path in snapshot_paths(self.out)]
            self.module.load_state_dict(live)
            found |= each_and_all(probs, labels)
        elif self.average.ready:
            with self.averaged():
                found["ensemble"] = figures([self._predict(test)], labels)
        return {"ensembles": found}

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The module with the averaged parameters and recomputed batch-norm statistics; restored after."""
        live = {k: v.clone() for k, v in self.module.state_dict().items()}
        with torch.no_grad():
            for name, p in self.module.named_parameters():
                p.copy_(self.average.params[name])
        recompute_batchnorm(self.module, self.splits["train"], self.e.feeds, self.plan.config.eval_batch, self.device)
        try:
            yield
        finally:
            self.module.load_state_dict(live)

    def _predict(self, split: Split, weights: Path | None = None) -> torch.Tensor:
        if weights is not None:
            from safetensors.torch import load_file
            self.module.load_state_dict(load_file(str(weights)), strict=False)
        return predict(self.module, split, self.e.feeds, self.plan.config.eval_batch, self.device)

    def _write(self, path: Path, steps_done: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        m = self.plan.model(self.e.model)
        checkpoints.save_weights(path, model_state(self.module, m), {
            "dlc_spec": self.plan.path, "dlc_train": self.plan.name, "dlc_network": m.network,
            "step": str(steps_done)})


# --- k independent members -------------------------------------------------------------------------------------

def train_members(compilation: "Compilation", plan: TrainPlan, opts: "Options",
                  train_one: Callable[..., "Result"]) -> "Result":
    """`config ensemble=k`: k complete runs in <run>/member<i>/ (seeds seed..seed+k-1), then the mean of
    their best weights' softmax predictions. <run>/last.state.pt records which members are done, so that
    `--resume` goes on with the member that was stopped."""
    from .loop import Result

    started = time.perf_counter()
    e = plan.ensembles
    state_path = opts.out / "last.state.pt"
    done: list[int] = []
    if opts.resume:
        state = checkpoints.load_state(state_path)
        if state.get("plan") != plan.name or "members_done" not in state:
            raise TrainError(f"{state_path} is not a checkpoint of the ensemble `{plan.name}`")
        done = list(state["members_done"])
    opts.out.mkdir(parents=True, exist_ok=True)
    checkpoints.save_state(state_path, {"plan": plan.name, "members_done": done})  # `--resume` finds the run
    notes: list[str] = []
    epochs = opts.epochs or plan.config.epochs
    for i in range(e.members):
        if i in done:
            continue
        out = member_dir(opts.out, i)
        member = dataclasses.replace(plan, config=dataclasses.replace(plan.config, seed=plan.config.seed + i),
                                     ensembles=None)
        result = train_one(compilation, member, dataclasses.replace(
            opts, out=out, resume=opts.resume and (out / "last.state.pt").exists()))
        notes += [f"member {i + 1}: {n}" for n in result.notes]
        if result.interrupted:
            checkpoints.save_state(state_path, {"plan": plan.name, "members_done": done})
            return Result(result.epochs, {}, {}, time.perf_counter() - started, True, notes)
        done.append(i)
        checkpoints.save_state(state_path, {"plan": plan.name, "members_done": done})
        epochs = result.epochs
    found = evaluate_members(compilation, plan, opts)
    test, val = found["test"]["ensemble"], found["val"]["ensemble"]
    summary = {"train": plan.name, "spec": plan.path, "epochs": epochs, "test": test, "val": val,
               "ensembles": {"kind": "members", "seeds": [plan.config.seed + i for i in range(e.members)],
                             "single": found["test"]["members"][0], **found["test"], "val": found["val"]},
               "seconds": round(time.perf_counter() - started, 2), "notes": notes}
    report.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", opts.out / "summary.json")
    return Result(epochs, test, val, time.perf_counter() - started, False, notes)


def evaluate_members(compilation: "Compilation", plan: TrainPlan, opts: "Options") -> dict[str, Any]:
    """split -> the ensemble's figures and each member's, from the members' `best` weights."""
    from . import data as datasets

    e = plan.ensembles
    data = datasets.load(plan.data.kind, options(plan.data.options), opts.data_base)
    device = torch.device(opts.device if opts.device != "cuda" else "cuda:0")
    _, models = build_steps(compilation, plan)
    module = models[e.model].to(device)
    found: dict[str, Any] = {}
    for split in ("val", "test"):
        probs = [member_predictions(module, plan, member_dir(opts.out, i), data.splits[split], device)
                 for i in range(e.members)]
        found[split] = each_and_all(probs, data.splits[split][e.target])
    return found


def member_dir(out: Path, i: int) -> Path:
    return out / f"member{i + 1}"


def member_predictions(module: nn.Module, plan: TrainPlan, run: Path, split: Split,
                       device: torch.device) -> torch.Tensor:
    """The softmax predictions of a member's `best` weights over a split."""
    from safetensors.torch import load_file

    path = checkpoints.weight_paths(run, "best", [plan.ensembles.model])[plan.ensembles.model]
    module.load_state_dict(load_file(str(path)), strict=False)
    return predict(module, split, plan.ensembles.feeds, plan.config.eval_batch, device)
