"""Generative models' ops: the VAE's reparameterization, z = mu + exp(logvar/2) * eps.

PyTorch form: the `reparameterize` helper, which samples while training and returns mu in eval
mode. ONNX form: the inference form, z = mu (Identity); the exported model is deterministic.
"""
from __future__ import annotations

from ..emit.onnx.context import OnnxContext
from ..emit.torch.forms import _call, _multi
from ..ir.dims import shape_str
from .table import (Attrs, OpDef, ShapeError, Types, need_float, register, shapes_differ)


def _reparam_infer(a: Attrs, ins: Types) -> Types:
    mu, logvar = ins
    need_float(mu)
    if shapes_differ(mu.shape, logvar.shape):
        raise ShapeError(f"mu {shape_str(mu.shape)} and logvar {shape_str(logvar.shape)} must have the same shape", 1)
    return [mu]


def _reparameterize_onnx(ctx: OnnxContext) -> list[str]:
    """Inference form: z = mu. The sampling noise is a training device; the exported model is
    deterministic, as the PyTorch module is in eval mode."""
    return [ctx.b.one("Identity", [ctx.inputs[0]], ctx.hint)]


register(OpDef(
    "reparameterize", (), _reparam_infer,
    "VAE sampling z = mu + exp(logvar/2) * eps, eps ~ N(0, I) (z = mu at inference)",
    "(mu, logvar) -> shape of mu", "generative", inputs=(2, 2), elementwise_flops=3,
    torch=_multi(lambda s, xs: _call("reparameterize", [*xs, "self.training"]), ("reparameterize",)),
    onnx=_reparameterize_onnx))
