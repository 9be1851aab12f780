"""Pooling and resampling: max/avg pooling (with ceil_mode), adaptive and global pooling, upsampling,
with their PyTorch forms (nn.MaxPoolNd / F.max_poolNd, ...) and ONNX forms that keep PyTorch's
output sizes and divisors exactly (see `_pool_node`)."""
from __future__ import annotations

from typing import Any

from ..emit.onnx.context import Converter, NoOnnxForm, OnnxContext, unary
from ..emit.torch.forms import (Args, OpSource, TorchEntry, _kw,
                                _pair, _tidy, _unary, _value)
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
    if size.is_static:
        return Dim.sym("?ceil_mode")  # decided by the size the module sees (see ir/dims.py)
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
        return [x.with_shape((*x.shape[:2], *map(Dim.of, a["output"])))]
    return infer


def _adaptive_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    return numel(ins[0].shape)


# --- PyTorch forms ------------------------------------------------------------------------------

def _pool_args(kws: tuple[tuple[str, Any], ...]) -> Args:
    return lambda s: [_tidy(s.attrs["kernel"], compact=True), *(_kw(s, name, d) for name, d in kws)]


_MAX_KWS = (("stride", None), ("padding", 0), ("dilation", 1), ("ceil_mode", False))
_AVG_KWS = (("stride", None), ("padding", 0), ("ceil_mode", False), ("count_include_pad", True))


def _adaptive_torch(kind: str, n: int) -> TorchEntry:
    output: Args = lambda s: [_tidy(s.attrs["output"], compact=True)]
    return _pair(f"nn.Adaptive{kind.title()}Pool{n}d", f"F.adaptive_{kind}_pool{n}d", output)


# --- ONNX forms ---------------------------------------------------------------------------------

def _pool_node(ctx: OnnxContext, op_type: str, x: str, padded: bool, **attrs) -> str:
    """A MaxPool / AveragePool node with PyTorch's output size (`padded`: x holds the padding).

    Where a size is static, the end pad is chosen so that ONNX's division yields PyTorch's count,
    ceil_mode rule included (the last window starts inside the input or the left padding). ONNX
    pads never count as elements, so an average divides by the window's part inside x, as PyTorch
    does. A symbolic size with ceil_mode has no padding (the shape rule requires it) and keeps
    ONNX's ceil_mode; static dims beside it then get an exact span (cropping unused elements)."""
    a, n = ctx.attrs, ctx.rank() - 2
    stride, dilation = a["stride"] or a["kernel"], a.get("dilation") or (1,) * n
    ceil = a["ceil_mode"] and any(ctx.static(0, 2 + i) is None for i in range(n))
    begin, end, crop = [], [], []
    for i in range(n):
        p, size = a["padding"][i], ctx.static(0, 2 + i)
        begin.append(0 if padded else p)
        if size is None:
            end.append(0 if padded else p)
            continue
        out = ctx.out_types[0].shape[2 + i].value
        span = (out - 1) * stride[i] + dilation[i] * (a["kernel"][i] - 1) + 1
        have = size + (2 * p if padded else p)  # x's extent, with its begin (and end) padding
        extra = span - have  # < stride in floor mode: floor division drops the rest
        end.append(max(0, extra) if a["ceil_mode"] else (0 if padded else p))
        if ceil and extra < 0:
            crop.append((2 + i, (size + (2 * p if padded else 0)) + extra))
    if crop:
        axes, ends = [c[0] for c in crop], [c[1] for c in crop]
        x = ctx.b.one("Slice", [x, ctx.b.ints([0] * len(crop), "starts"), ctx.b.ints(ends, "ends"),
                                ctx.b.ints(axes, "axes")], f"{ctx.hint}/crop")
    return ctx.b.one(op_type, [x], ctx.hint, kernel_shape=list(a["kernel"]), strides=list(stride),
                     pads=begin + end, ceil_mode=int(ceil), **attrs)


def _maxpool_onnx(ctx: OnnxContext) -> list[str]:
    return [_pool_node(ctx, "MaxPool", ctx.x, False, dilations=list(ctx.attrs["dilation"]))]


def _avgpool_onnx(ctx: OnnxContext) -> list[str]:
    """PyTorch divides by the window's part inside the padded input (count_include_pad) or inside
    the input. With count_include_pad the padding becomes an explicit zero Pad; the ONNX pads
    (which only complete ceil_mode windows) are never counted."""
    a = ctx.attrs
    x, padded = ctx.x, a["count_include_pad"] and any(a["padding"])
    if padded:
        x = ctx.b.one("Pad", [x, ctx.b.ints([0, 0, *a["padding"], 0, 0, *a["padding"]])], f"{ctx.hint}/pad",
                      mode="constant")
    return [_pool_node(ctx, "AveragePool", x, padded, count_include_pad=0)]


def _adaptive_onnx(kind: str) -> Converter:
    pool, glob, reduce = {"avg": ("AveragePool", "GlobalAveragePool", "ReduceMean"),
                          "max": ("MaxPool", "GlobalMaxPool", "ReduceMax")}[kind]

    def convert(ctx: OnnxContext) -> list[str]:
        out = ctx.attrs["output"]
        if all(o == 1 for o in out):
            return [ctx.b.one(glob, [ctx.x], ctx.hint)]
        kernel, reduced = [], []
        for i, o in enumerate(out):
            size = ctx.static(0, 2 + i)
            if size is None and o == 1:
                reduced.append(2 + i)
                kernel.append(1)
            elif size is None:
                raise NoOnnxForm(f"adaptive pooling of the symbolic size `{ctx.in_types[0].shape[2 + i]}` "
                                 f"to {o} has input-dependent windows")
            elif size % o:
                raise NoOnnxForm(f"input size {size} is not a multiple of the output size {o}, so the "
                                 "adaptive windows differ in size and overlap (no single pooling window)")
            else:
                kernel.append(size // o)
        x = ctx.x
        if reduced:
            x = ctx.b.one(reduce, [x, ctx.b.ints(reduced)], f"{ctx.hint}/reduce", keepdims=1)
        return [ctx.b.one(pool, [x], ctx.hint, kernel_shape=kernel, strides=kernel)]
    return convert


_POOL_RULE = "(B, C, *S) -> (B, C, *S'), S' = floor((S + 2*padding - dilation*(kernel-1) - 1)/stride) + 1 (ceil with ceil_mode)"

for _n in (1, 2):
    _common = (Param("kernel", ints(_n, 1), type_name="int | [int]"),
               Param("stride", optional(ints(_n, 1)), None, "int | [int] (default: kernel)"),
               Param("padding", ints(_n), 0, "int | [int]"))
    register(
        OpDef(f"maxpool{_n}d", _common + (Param("dilation", ints(_n, 1), 1, "int | [int]"),
                                         Param("ceil_mode", bool_, False, "bool")),
              _pool_infer(_n), f"{_n}-D max pooling", _POOL_RULE, "pooling", macs=_window_macs,
              torch=_pair(f"nn.MaxPool{_n}d", f"F.max_pool{_n}d", _pool_args(_MAX_KWS)),
              onnx=_maxpool_onnx),
        OpDef(f"avgpool{_n}d", _common + (Param("ceil_mode", bool_, False, "bool"),
                                         Param("count_include_pad", bool_, True, "bool")),
              _pool_infer(_n), f"{_n}-D average pooling", _POOL_RULE, "pooling", macs=_window_macs,
              torch=_pair(f"nn.AvgPool{_n}d", f"F.avg_pool{_n}d", _pool_args(_AVG_KWS)),
              onnx=_avgpool_onnx),
        OpDef(f"adaptive_avgpool{_n}d", (Param("output", ints(_n, 1), type_name="int | [int]"),),
              _adaptive_infer(_n), f"{_n}-D adaptive average pooling to a fixed size",
              "(B, C, *S) -> (B, C, *output)", "pooling", macs=_adaptive_macs,
              torch=_adaptive_torch("avg", _n), onnx=_adaptive_onnx("avg")),
        OpDef(f"adaptive_maxpool{_n}d", (Param("output", ints(_n, 1), type_name="int | [int]"),),
              _adaptive_infer(_n), f"{_n}-D adaptive max pooling to a fixed size",
              "(B, C, *S) -> (B, C, *output)", "pooling", macs=_adaptive_macs,
              torch=_adaptive_torch("max", _n), onnx=_adaptive_onnx("max")),
    )


def _global_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    if not 3 <= x.rank <= 5:
        raise ShapeError(f"expects (B, C, ...) with one to three spatial dims, got rank {x.rank}")
    return [x.with_shape((*x.shape[:2], *(Dim.const(1),) * (x.rank - 2)))]


def _global_torch(kind: str) -> TorchEntry:
    """global_avgpool / global_maxpool: adaptive pooling to size 1, keeping the spatial dims."""
    def name(src: OpSource, fmt: str) -> str:
        n = len(src.in_shapes[0]) - 2
        if n not in (1, 2, 3):
            raise ValueError(f"global pooling of {n} spatial dims has no PyTorch layer")
        return fmt.format(n=n)
    cls, fn = f"nn.Adaptive{kind.title()}Pool{{n}}d", f"F.adaptive_{kind}_pool{{n}}d"
    return _unary(lambda s: f"{name(s, cls)}(1)", lambda s, x: f"{name(s, fn)}({x}, 1)")


register(
    OpDef("global_avgpool", (), _global_infer, "average over all spatial dims, keeping them as size 1",
          "(B, C, *S) -> (B, C, 1, ...)", "pooling", macs=_adaptive_macs,
          torch=_global_torch("avg"), onnx=unary("GlobalAveragePool")),
    OpDef("global_maxpool", (), _global_infer, "maximum over all spatial dims, keeping them as size 1",
          "(B, C, *S) -> (B, C, 1, ...)", "pooling", macs=_adaptive_macs,
          torch=_global_torch("max"), onnx=unary("GlobalMaxPool")),
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


def _scale_factor(src: OpSource) -> str:
    v = _value(src.attrs["scale"])
    return str(int(v)) if isinstance(v, float) and v.is_integer() else _tidy(src.attrs["scale"])


def _upsample_args(src: OpSource) -> list[str | None]:
    mode = _value(src.attrs["mode"])
    corners = None if mode == "nearest" else _kw(src, "align_corners", False)
    return [f"scale_factor={_scale_factor(src)}", _kw(src, "mode", "nearest"), corners]


def _upsample_onnx(ctx: OnnxContext) -> list[str]:
    a = ctx.attrs
    s = float(a["scale"])
    scales = ctx.b.const([1.0, 1.0] + [s] * (ctx.rank() - 2), "upsample_scales", "float32")
    if a["mode"] == "nearest":  # nn.Upsample(mode="nearest"): src = floor(dst / scale)
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        attrs = dict(mode="linear",
                     coordinate_transformation_mode="align_corners" if a["align_corners"] else "half_pixel")
    return [ctx.b.one("Resize", [ctx.x, "", scales], ctx.hint, **attrs)]


register(OpDef(
    "upsample", (Param("scale", float_, 2.0, "number"), Param("mode", choice("nearest", "bilinear"), "nearest",
                                                                 '"nearest" | "bilinear"'),
                 Param("align_corners", bool_, False, "bool")),
    _upsample_infer, "nearest or bilinear upsampling by a whole scale factor", "(B, C, *S) -> (B, C, *(S*scale))",
    "pooling", elementwise_flops=1,
    torch=_pair("nn.Upsample", "F.interpolate", _upsample_args), onnx=_upsample_onnx))
