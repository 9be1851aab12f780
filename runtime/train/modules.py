"""The PyTorch side of a training plan: one module per step, the models they share, the optimizers.

Each step's objective is a network the compiler synthesized (compiler/syntax/desugar.py), emitted
by the ordinary PyTorch emitter: its constructor builds the models as submodules named like the
models, its `forward(**fields)` returns the step's outputs (`loss` first among them as declared).
The models are built once, by the first step that uses them, and put into the other steps' modules,
so that every step trains the same weights. Every model's `state_dict` is checked against the
compiler's weight names before training starts.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from dlc.compiler.diagnostics import CompileError
from dlc.compiler.emit.torch.api import _execute
from dlc.compiler.errors import EmitError
from dlc.compiler.emit.torch.file import emit_torch
from dlc.compiler.ir.train import ModelPlan, OptimizerPlan, TrainPlan, options
from dlc.compiler.pipeline import Compilation


class TrainError(Exception):
    """A problem found while setting up or running training (a checkpoint that does not fit,
    a batch size the processes cannot share); the text names what and where."""


def step_source(compilation: Compilation, plan: TrainPlan) -> str:
    """The generated PyTorch source of the plan's step networks and everything they use."""
    graphs = {st.graph.name: st.graph for st in plan.steps}
    try:
        return emit_torch(dataclasses.replace(compilation, graphs=graphs))
    except EmitError as err:  # a limit of the PyTorch emitter: located, as `dlc emit torch` reports it
        raise CompileError([err.diag], compilation.sources) from None


def build_steps(compilation: Compilation, plan: TrainPlan) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """(step name -> its module, model name -> the model module shared by the steps)."""
    namespace = _execute(step_source(compilation, plan), f"{plan.path}:{plan.name}")
    steps: dict[str, nn.Module] = {}
    models: dict[str, nn.Module] = {}
    for st in plan.steps:
        module = getattr(namespace, st.graph.name)()
        for name in st.models:
            if name in models:
                setattr(module, name, models[name])
            else:
                models[name] = getattr(module, name)
        steps[st.name] = module
    for m in plan.models:
        check_model(models[m.name], m)
    return steps, models


def check_model(module: nn.Module, m: ModelPlan) -> None:
    expected = {name: tuple(shape) for name, shape, _ in m.weights}
    got = {k: tuple(v.shape) for k, v in module.state_dict().items() if k in expected}
    if got != expected:
        raise TrainError(f"model `{m.name}`: the generated module's weights disagree with the compiled "
                         f"network {m.network} (a compiler bug)")


def model_state(module: nn.Module, m: ModelPlan) -> dict[str, torch.Tensor]:
    """The model's weights under the compiler's names (tie aliases left out), contiguous, on the CPU."""
    sd = module.state_dict()
    return {name: sd[name].detach().to("cpu").contiguous().clone() for name, _, _ in m.weights}


def load_start(module: nn.Module, m: ModelPlan, path: Path) -> tuple[list[str], list[str]]:
    """Start `m` from a checkpoint (transfer learning): tensors whose name and shape fit are copied;
    the others (a head of another size) keep their fresh initialization and are listed. A checkpoint
    with names the model does not have, or that fits nothing, is refused. Returns those kept
    tensors and the warning text of the dtype casts made (`checkpoints.read_start`)."""
    from .checkpoints import read_start

    state, casts = read_start(path, m.name, module.state_dict())
    expected = {name: tuple(shape) for name, shape, _ in m.weights}
    unknown = sorted(set(state) - set(expected))
    if unknown:
        raise TrainError(f"model `{m.name}`: the checkpoint `{path}` has weights that network {m.network} does not "
                         f"have: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    fits = {k: v for k, v in state.items() if tuple(v.shape) == expected[k]}
    if not fits:
        raise TrainError(f"model `{m.name}`: no weight of the checkpoint `{path}` fits network {m.network}")
    notes = [f"{k} {list(expected[k])} (checkpoint {list(state[k].shape)})" for k in sorted(state) if k not in fits]
    notes += [f"{k} {list(expected[k])} (not in the checkpoint)" for k in sorted(expected) if k not in state]
    with torch.no_grad():
        sd = module.state_dict()
        for k, v in fits.items():
            sd[k].copy_(v)
    return notes, casts


def freeze(module: nn.Module, m: ModelPlan) -> list[nn.Module]:
    """Stop the gradients of the frozen parts; returns the submodules that are wholly frozen (kept in
    eval mode while training, so that their batch-norm statistics stay as loaded too)."""
    if not m.freeze:
        return []
    for name, p in module.named_parameters():
        if any(name == f or name.startswith(f + ".") for f in m.freeze):
            p.requires_grad_(False)
    return [sub for name, sub in module.named_modules() if name and any(name == f or name.startswith(f + ".")
                                                                         for f in m.freeze)]


def make_optimizer(opt: OptimizerPlan, models: Mapping[str, nn.Module]) -> torch.optim.Optimizer:
    params = [p for name in opt.models for p in models[name].parameters() if p.requires_grad]
    if not params:
        raise TrainError(f"optimizer `{opt.kind}`: every weight of {', '.join(opt.models)} is frozen")
    o = options(opt.options)
    if opt.kind == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"],
                               weight_decay=o["weight_decay"])
    if opt.kind == "adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=o["betas"], eps=o["eps"], weight_decay=o["weight_decay"])
    if opt.kind == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], betas=o["betas"], eps=o["eps"], weight_decay=o["weight_decay"])
    if opt.kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=o["lr"], alpha=o["alpha"], momentum=o["momentum"],
                                   weight_decay=o["weight_decay"])
    raise AssertionError(opt.kind)  # the train pass knows no other


def clip_weights(opt: OptimizerPlan, optimizer: torch.optim.Optimizer) -> None:
    """`clip_weights=c` (WGAN): every weight the optimizer updates clamped to [-c, c] after its step."""
    c = options(opt.options).get("clip_weights")
    if c is None:
        return
    with torch.no_grad():
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.clamp_(-c, c)


def make_schedule(opt: OptimizerPlan, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                  total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A factor of the lr per optimizer step (the scheduler steps once per optimizer step)."""
    o = options(opt.schedule_options)
    base = options(opt.options)["lr"]
    kind = opt.schedule

    def factor(step: int) -> float:
        if kind == "step":
            return o["gamma"] ** (step // (o["every"] * steps_per_epoch))
        if kind == "warmup":
            return min(1.0, (step + 1) / o["steps"])
        if kind == "cosine":
            if step < o["warmup"]:
                return (step + 1) / o["warmup"]
            span = max(1, total_steps - o["warmup"])
            progress = min(1.0, (step - o["warmup"]) / span)
            floor = o["min_lr"] / base
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if kind == "cyclic":  # snapshot ensembles: runtime/train/ensembles.py
            from .ensembles import cyclic_factor
            return cyclic_factor(step, total_steps, o["cycles"], o["min_lr"] / base)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def output_names(plan: TrainPlan, step: str) -> list[str]:
    st = next(s for s in plan.steps if s.name == step)
    return [name for name, _ in st.graph.outputs]


def as_dict(names: list[str], result: Any) -> dict[str, torch.Tensor]:
    values = result if isinstance(result, tuple) else (result,)
    return dict(zip(names, values, strict=True))
