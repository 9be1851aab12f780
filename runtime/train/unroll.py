"""Unrolled GANs (Metz, Poole, Pfau & Sohl-Dickstein 2017): `step generator(unroll=k)`.

Before the step's update, its rivals (the other steps whose models its loss reads: the
discriminator) are copied and trained k steps ahead on the current batch, each by its own step's
graph, optimizer kind, settings, current lr and state (Adam's moments, copied), and gradient
clipping; the step's loss is then computed against the copies, and the copies are thrown away. The
real discriminator, its optimizer and the generator's gradients are left as a plain step leaves
them: the copies' gradients are taken with `torch.autograd.grad`, never accumulated elsewhere.

This is the first-order form: the generator's gradient is d loss(G, D_k) / dG with D_k held fixed,
without the terms through the k updates (dD_k / dG) that the paper's full form back-propagates.
It keeps the main effect (the generator is scored by a discriminator that has reacted to its
current samples, which discourages mode hopping) at k extra discriminator steps per generator step.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

import torch
from torch import nn

from dlc.compiler.ir.train import StepPlan, TrainPlan

from .modules import as_dict, make_optimizer


@contextmanager
def unrolled(plan: TrainPlan, st: StepPlan, steps: Mapping[str, nn.Module], models: Mapping[str, nn.Module],
             optimizers: Mapping[str, torch.optim.Optimizer], fed: Callable[[StepPlan], dict[str, torch.Tensor]],
             clip_grad: float | None) -> Iterator[None]:
    """Within the block, every step module sees copies of the rivals' models, trained `st.unroll`
    steps ahead; on leaving, the real models are put back."""
    rivals = [o for o in plan.steps if o is not st and set(o.optimizer.models) & set(st.models)]
    names = sorted({m for o in rivals for m in o.optimizer.models})
    copies = {name: copy.deepcopy(models[name]) for name in names}
    swapped = [(module, name) for module in steps.values() for name in names
               if getattr(module, name, None) is models[name]]
    for module, name in swapped:
        setattr(module, name, copies[name])
    try:
        ahead = {o.name: _copy_optimizer(o, optimizers[o.name], {**models, **copies}) for o in rivals}
        for _ in range(st.unroll):
            for o in rivals:
                opt = ahead[o.name]
                params = [p for group in opt.param_groups for p in group["params"]]
                loss = as_dict([n for n, _ in o.graph.outputs], steps[o.name](**fed(o)))["loss"]
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                for p, g in zip(params, grads, strict=True):
                    p.grad = None if g is None else g.detach()
                if clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip_grad)
                opt.step()
        yield
    finally:
        for module, name in swapped:
            setattr(module, name, models[name])


def _copy_optimizer(o: StepPlan, real: torch.optim.Optimizer, models: Mapping[str, nn.Module]) -> torch.optim.Optimizer:
    """An optimizer of the same kind over the copies, with a deep copy of the real one's state (and lr)."""
    opt = make_optimizer(o.optimizer, models)
    opt.load_state_dict(copy.deepcopy(real.state_dict()))
    return opt
