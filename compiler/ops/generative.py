"""Generative models' ops: the VAE's reparameterization, z = mu + exp(logvar/2) * eps, and `noise`,
a GAN's latent z ~ N(0, I) with the batch size of its input.

PyTorch form: the `reparameterize` helper, which samples while training and returns mu in eval
mode. ONNX form: the inference form, z = mu (Identity); the exported model is deterministic.
`noise` samples in training and inference alike (a generator's input); it has no ONNX form.
"""
from __future__ import annotations

from ..emit.onnx.context import NoOnnxForm, OnnxContext
from ..emit.torch.forms import _atom, _call, _multi, _tidy, _unary, _value
from ..ir.dims import Dim, shape_str
from ..ir.types import TensorType
from .table import (Attrs, OpDef, Param, ShapeError, Types, choice, int_list, need_float, register, shapes_differ)


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


def _noise_infer(a: Attrs, ins: Types) -> Types:
    (x,) = ins
    if x.rank == 0:
        raise ShapeError("the input gives the batch size: it needs a batch dim, not a scalar", 0)
    if any(n <= 0 for n in a["shape"]):
        raise ShapeError(f"the sample shape {list(a['shape'])} needs positive sizes")
    return [TensorType("f32", (x.shape[0], *(Dim.const(n) for n in a["shape"])))]


def _noise_torch(s, x: str) -> str:
    """`torch.randn(z.shape[0], 100, device=z.device)` (`torch.rand` for "uniform")."""
    fn = "torch.rand" if _value(s.attrs.get("dist", "'normal'")) == "uniform" else "torch.randn"
    shape = _value(s.attrs["shape"])
    sizes = [str(n) for n in shape] if isinstance(shape, tuple) else [str(shape)] if isinstance(shape, int) \
        else [f"*{_atom(s.attrs['shape'])}"]
    return _call(fn, [f"{_atom(x)}.shape[0]", *sizes, f"device={_atom(x)}.device"])


def _noise_module(s) -> str:
    dist = [s.attrs["dist"]] if "dist" in s.given else []
    return _call("Noise", [_tidy(s.attrs["shape"]), *dist])


def _noise_onnx(ctx: OnnxContext) -> list[str]:
    raise NoOnnxForm("it samples random numbers: the ONNX export is a deterministic inference graph")


register(OpDef(
    "noise", (Param("shape", int_list, type_name="[int]"), Param("dist", choice("normal", "uniform"), "normal",
                                                                 '"normal" | "uniform"')), _noise_infer,
    "samples z ~ N(0, I) (or U[0, 1)) of shape (B, *shape), B the input's batch size (a GAN's latent)",
    "(B, ..) -> (B, *shape) f32", "generative", elementwise_flops=1,
    torch=_unary(_noise_module, _noise_torch, ("Noise",)),
    onnx=_noise_onnx))
