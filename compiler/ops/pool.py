"""Pooling and resampling: max/avg pooling (with ceil_mode), adaptive and global pooling, upsampling."""
from __future__ import annotations

from ..ir.dims import Dim, numel
from .table import (Attrs, OpDef, Param, ShapeError, Types, bool_, choice, float_, ints, need_float, need_rank,
                    optional, register)


def pool_out(size: Dim, k: int, s: int, p: int, d: int, ceil_mode: bool) -> Dim:
    """PyTorch's pooling size rule, including its ceil_mode correction."""
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = span.ceildiv(s) + 1
    if size.is_const:
        return out - 1 if (out.value - 1) * s >= size.value + p else out
    if p == 0 and d * (k - 1) + 1 >= s:
        return out  # the last window always starts inside the input
    raise ShapeError(f"ceil_mode with padding needs a fixed input size, got symbolic `{size}`")


def _pool_infer(n: int):
    def infer(a: Attrs, ins: Types) -> Types:
        x = ins[0]
        need_rank(x, (n + 2,), "(B, C, ...)")
        need_float(x)
        stride = a["stride"] or a["kernel"]
        spatial = []
        for i in range(n):
            k, p = a["kernel"][i], a["padding"][i]
            if p * 2 > k:
                raise ShapeError(f"padding {p} must be at most half the kernel size {k}")
            d = a.get("dilation", (1,) * n)[i]
            out = pool_out(x.shape[2 + i], k, stride[i], p, d, a["ceil_mode"])
            if out.is_const and out.value <= 0:
                raise ShapeError(f"pooling window {k} is larger than the input size {x.shape[2 + i]}")
            spatial.append(out)
        return [x.with_shape((*x.shape[:2], *spatial))]
    return infer


def _window_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    k = 1
    for x in a["kernel"]:
        k *= x
    return numel(outs[0].shape) * k  # one compare or add per window element, counted as a MAC


def _adaptive_infer(n: int):
    def infer(a: Attrs, ins: Types) -> Types:
        x = ins[0]
        need_rank(x, (n + 2,), "(B, C, ...)")
        return [x.with_shape((*x.shape[:2], *map(Dim.const, a["output"])))]
    return infer


def _adaptive_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    return numel(ins[0].shape)


_POOL_RULE = "(B, C, *S) -> (B, C, *S'), S' = floor((S + 2*padding - dilation*(kernel-1) - 1)/stride) + 1 (ceil with ceil_mode)"

for _n in (1, 2):
    _common = (Param("kernel", ints(_n, 1), type_name="int | [int]"),
               Param("stride", optional(ints(_n, 1)), None, "int | [int] (default: kernel)"),
               Param("padding", ints(_n), 0, "int | [int]"))
    register(
        OpDef(f"maxpool{_n}d", _common + (Param("dilation", ints(_n, 1), 1, "int | [int]"),
                                         Param("ceil_mode", bool_, False, "bool")),
              _pool_infer(_n), f"{_n}-D max pooling", _POOL_RULE, "pooling", macs=_window_macs),
        OpDef(f"avgpool{_n}d", _common + (Param("ceil_mode", bool_, False, "bool"),
                                         Param("count_include_pad", bool_, True, "bool")),
              _pool_infer(_n), f"{_n}-D average pooling", _POOL_RULE, "pooling", macs=_window_macs),
        OpDef(f"adaptive_avgpool{_n}d", (Param("output", ints(_n, 1), type_name="int | [int]"),),
              _adaptive_infer(_n), f"{_n}-D adaptive average pooling to a fixed size",
              "(B, C, *S) -> (B, C, *output)", "pooling", macs=_adaptive_macs),
        OpDef(f"adaptive_maxpool{_n}d", (Param("output", ints(_n, 1), type_name="int | [int]"),),
              _adaptive_infer(_n), f"{_n}-D adaptive max pooling to a fixed size",
              "(B, C, *S) -> (B, C, *output)", "pooling", macs=_adaptive_macs),
    )


def _global_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    if not 3 <= x.rank <= 5:
        raise ShapeError(f"expects (B, C, ...) with one to three spatial dims, got rank {x.rank}")
    return [x.with_shape((*x.shape[:2], *(Dim.const(1),) * (x.rank - 2)))]


register(
    OpDef("global_avgpool", (), _global_infer, "average over all spatial dims, keeping them as size 1",
          "(B, C, *S) -> (B, C, 1, ...)", "pooling", macs=_adaptive_macs),
    OpDef("global_maxpool", (), _global_infer, "maximum over all spatial dims, keeping them as size 1",
          "(B, C, *S) -> (B, C, 1, ...)", "pooling", macs=_adaptive_macs),
)


def _upsample_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    need_rank(x, (3, 4, 5), "(B, C, ...)")
    if a["mode"] == "nearest" and a["align_corners"]:
        raise ShapeError("align_corners applies to bilinear mode only")
    if a["mode"] == "bilinear" and x.rank != 4:
        raise ShapeError("bilinear mode needs a 4-D input (B, C, H, W)")
    s = a["scale"]
    if s != int(s):
        raise ShapeError(f"scale must be a whole number, got {s}")
    return [x.with_shape((*x.shape[:2], *(d * int(s) for d in x.shape[2:])))]


register(OpDef(
    "upsample", (Param("scale", float_, 2.0, "number"), Param("mode", choice("nearest", "bilinear"), "nearest",
                                                                 '"nearest" | "bilinear"'),
                 Param("align_corners", bool_, False, "bool")),
    _upsample_infer, "nearest or bilinear upsampling by a whole scale factor", "(B, C, *S) -> (B, C, *(S*scale))",
    "pooling", elementwise_flops=1))
