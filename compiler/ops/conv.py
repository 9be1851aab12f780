"""Convolutions: conv1d/2d/3d, transposed convolutions and PixelCNN's masked convolution, with
their PyTorch modules (nn.ConvNd, nn.ConvTransposeNd, the MaskedConv2d helper) and ONNX forms
(Conv and ConvTranspose; the masked kernel is stored pre-multiplied by its mask)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..emit.onnx.context import OnnxContext
from ..emit.torch.forms import (_ALWAYS, OpSource, _call, _kw, _size, _tidy, _weighted)
from ..ir.dims import Dim, numel
from ..ir.types import TensorType
from .table import (Attrs, OpDef, Param, ShapeError, Types, bool_, choice, concrete, divides, int_, ints,
                    need_float, need_rank, padding, register)

if TYPE_CHECKING:
    import numpy as np


def conv_out(size: Dim, k: int, s: int, p: int, d: int) -> Dim:
    """floor((W + 2P - D*(F-1) - 1) / S) + 1, the notes' floor((W+2P-F)/S)+1 with dilation."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv_transpose_out(size: Dim, k: int, s: int, p: int, d: int, op: int) -> Dim:
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


def _channels(a: Attrs, x: TensorType) -> int:
    cin = concrete(x.shape[1], "the channel dimension")
    g = a["groups"]
    if not (divides(g, cin) and divides(g, a["out"])):
        raise ShapeError(f"groups={g} must divide both input channels {cin} and output channels {a['out']}")
    return cin


def _conv_infer(n: int):
    def infer(a: Attrs, ins: Types) -> Types:
        x = ins[0]
        need_rank(x, (n + 2,), f"(B, C, {', '.join('DHW'[3 - n:])})")
        need_float(x)
        _channels(a, x)
        spatial = []
        for i in range(n):
            size = x.shape[2 + i]
            if a["padding"] == "same":
                if a["stride"][i] != 1:
                    raise ShapeError("padding=\"same\" needs stride 1")
                spatial.append(size)
                continue
            out = conv_out(size, a["kernel"][i], a["stride"][i], a["padding"][i], a["dilation"][i])
            if out.is_const and out.value <= 0:
                raise ShapeError(f"kernel {a['kernel'][i]} (dilation {a['dilation'][i]}) is larger than the padded input size {size}+2*{a['padding'][i]}")
            spatial.append(out)
        return [x.with_shape((x.shape[0], Dim.of(a["out"]), *spatial))]
    return infer


def _conv_weights(a: Attrs, ins: Types):
    cin = _channels(a, ins[0])
    w = [("weight", (Dim.const(a["out"]), Dim.const(cin // a["groups"]), *map(Dim.const, a["kernel"])), True)]
    return w + ([("bias", (Dim.const(a["out"]),), True)] if a["bias"] else [])


def _conv_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    k = 1
    for x in a["kernel"]:
        k *= x
    cin = concrete(ins[0].shape[1], "channels")
    return numel(outs[0].shape) * (cin // a["groups"] * k)


def _conv_params(n: int, transposed: bool = False) -> tuple[Param, ...]:
    ps = [
        Param("out", int_(1), type_name="int"),
        Param("kernel", ints(n, 1), type_name="int | [int]"),
        Param("stride", ints(n, 1), 1, "int | [int]"),
        Param("padding", ints(n) if transposed else padding(n), 0,
              "int | [int]" if transposed else 'int | [int] | "same" | "valid"'),
    ]
    if transposed:
        ps.append(Param("output_padding", ints(n), 0, "int | [int]"))
    ps += [
        Param("dilation", ints(n, 1), 1, "int | [int]"),
        Param("groups", int_(1), 1, "int"),
        Param("bias", bool_, True, "bool"),
    ]
    return tuple(ps)


def _tconv_infer(n: int):
    def infer(a: Attrs, ins: Types) -> Types:
        x = ins[0]
        need_rank(x, (n + 2,), "(B, C, ...)")
        need_float(x)
        _channels(a, x)
        for i in range(n):
            if a["output_padding"][i] >= max(a["stride"][i], a["dilation"][i]):
                raise ShapeError(f"output_padding {a['output_padding'][i]} must be smaller than stride or dilation")
        spatial = [conv_transpose_out(x.shape[2 + i], a["kernel"][i], a["stride"][i], a["padding"][i],
                                      a["dilation"][i], a["output_padding"][i]) for i in range(n)]
        for size in spatial:
            if size.is_const and size.value <= 0:
                raise ShapeError(f"padding {a['padding']} leaves no output (size {size})")
        return [x.with_shape((x.shape[0], Dim.of(a["out"]), *spatial))]
    return infer


def _tconv_weights(a: Attrs, ins: Types):
    cin = _channels(a, ins[0])
    w = [("weight", (Dim.const(cin), Dim.const(a["out"] // a["groups"]), *map(Dim.const, a["kernel"])), True)]
    return w + ([("bias", (Dim.const(a["out"]),), True)] if a["bias"] else [])


def _tconv_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    k = 1
    for x in a["kernel"]:
        k *= x
    return numel(ins[0].shape) * (a["out"] // a["groups"] * k)


# --- PyTorch forms ------------------------------------------------------------------------------

# size, padding, dilation, kernel, stride (as in forms._CONV_SIZE), output_padding
_CONV_KWS = (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1), ("bias", True))
_TCONV_KWS = (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1), ("groups", 1), ("bias", True))
_MASKED_KWS = (("mask", _ALWAYS), ("stride", 1), ("padding", "same"), ("dilation", 1), ("groups", 1), ("bias", True))


def _conv_module(cls: str, kws: tuple[tuple[str, Any], ...]) -> Callable[[OpSource], str]:
    def module(src: OpSource) -> str:
        head = [_size(src, 0, 1), _tidy(src.attrs["out"]), _tidy(src.attrs["kernel"], compact=True)]
        return _call(cls, head + [_kw(src, name, default) for name, default in kws])
    return module


# --- ONNX forms ---------------------------------------------------------------------------------

def _conv_pads(a, n: int) -> list[int]:
    if a["padding"] == "same":  # PyTorch: total d*(k-1), the odd extra element at the end
        total = [a["dilation"][i] * (a["kernel"][i] - 1) for i in range(n)]
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    return list(a["padding"]) * 2


def _conv_node(ctx: OnnxContext, weight: str) -> list[str]:
    a, n = ctx.attrs, ctx.rank() - 2
    inputs = [ctx.x, weight] + ([ctx.weights["bias"]] if "bias" in ctx.weights else [])
    return [ctx.b.one("Conv", inputs, ctx.hint, kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
                      pads=_conv_pads(a, n), dilations=list(a["dilation"]), group=a["groups"])]


def _conv_onnx(ctx: OnnxContext) -> list[str]:
    return _conv_node(ctx, ctx.weights["weight"])


def _conv_transpose_onnx(ctx: OnnxContext) -> list[str]:
    a = ctx.attrs
    inputs = [ctx.x, ctx.weights["weight"]] + ([ctx.weights["bias"]] if "bias" in ctx.weights else [])
    return [ctx.b.one("ConvTranspose", inputs, ctx.hint, kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
                      pads=list(a["padding"]) * 2, output_padding=list(a["output_padding"]),
                      dilations=list(a["dilation"]), group=a["groups"])]


_CONV_RULE = "(B, C, *S) -> (B, out, *S'), S' = floor((S + 2*padding - dilation*(kernel-1) - 1)/stride) + 1"
_TCONV_RULE = "(B, C, *S) -> (B, out, *S'), S' = (S-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1"

for _n in (1, 2, 3):
    register(
        OpDef(f"conv{_n}d", _conv_params(_n), _conv_infer(_n), f"{_n}-D convolution", _CONV_RULE, "convolution",
              weights=_conv_weights, macs=_conv_macs,
              torch=_weighted(f"conv{_n}d", _conv_module(f"nn.Conv{_n}d", _CONV_KWS)),
              onnx=_conv_onnx),
        OpDef(f"conv_transpose{_n}d", _conv_params(_n, transposed=True), _tconv_infer(_n),
              f"{_n}-D transposed convolution", _TCONV_RULE, "convolution",
              weights=_tconv_weights, macs=_tconv_macs,
              torch=_weighted(f"conv_transpose{_n}d", _conv_module(f"nn.ConvTranspose{_n}d", _TCONV_KWS)),
              onnx=_conv_transpose_onnx),
    )


# --- masked convolution (PixelCNN) ----------------------------------------------------------------

def _masked_infer(a: Attrs, ins: Types) -> Types:
    if any(k % 2 == 0 for k in a["kernel"]):
        raise ShapeError(f"a masked convolution needs an odd kernel (it has a centre pixel), got {list(a['kernel'])}")
    return _conv_infer(2)(a, ins)


def pixelcnn_mask(kh: int, kw: int, mask: str) -> np.ndarray:
    """MaskedConv2d's spatial mask: rows above the centre, and the centre row left of the centre
    (including the centre for mask "B")."""
    import numpy as np  # here, not at the top: the op table loads without numpy

    m = np.ones((kh, kw), dtype=np.float32)
    m[kh // 2, kw // 2 + (mask == "B"):] = 0
    m[kh // 2 + 1:] = 0
    return m


def _masked_conv_onnx(ctx: OnnxContext) -> list[str]:
    kh, kw = ctx.attrs["kernel"]
    masked = ctx.arrays["weight"] * pixelcnn_mask(kh, kw, ctx.attrs["mask"])
    return _conv_node(ctx, ctx.transformed_weight("weight", masked, "_masked"))


register(OpDef(
    "masked_conv2d",
    (Param("out", int_(1), type_name="int"), Param("kernel", ints(2, 1), type_name="int | [int]"),
     Param("mask", choice("A", "B"), type_name='"A" | "B"'),
     Param("stride", ints(2, 1), 1, "int | [int]"), Param("padding", padding(2), "same", 'int | [int] | "same"'),
     Param("dilation", ints(2, 1), 1, "int | [int]"), Param("groups", int_(1), 1, "int"),
     Param("bias", bool_, True, "bool")),
    _masked_infer, "PixelCNN masked 2-D convolution: each output sees only pixels above and to the left "
    "(mask A also hides the centre pixel, B keeps it); the mask is spatial and shared by all channels",
    _CONV_RULE, "convolution", weights=_conv_weights, macs=_conv_macs,
    torch=_weighted("masked_conv2d", _conv_module("MaskedConv2d", _MASKED_KWS), ("MaskedConv2d",)),
    onnx=_masked_conv_onnx))
