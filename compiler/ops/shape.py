"""Shape manipulation: flatten, reshape, unflatten, permute, transpose, unsqueeze, squeeze, expand.

PyTorch forms are tensor methods (`h.flatten(1)`) with a module for nn.Sequential (nn.Flatten or a
helper such as `Reshape`). ONNX forms never turn a symbolic dim (`B`, `T`, `H`) into a constant:
reshapes use ONNX's 0 / -1 codes, and `reshape_range` where those do not suffice.
"""
from __future__ import annotations

import math

from ..emit.onnx.context import OnnxContext, identity, reshape_range
from ..emit.torch.forms import (OpSource, _atom, _const, _items, _kw, _method, _multi, _simplify, _tidy)
from ..ir.dims import Dim, numel, shape_str
from .table import (Attrs, OpDef, Param, ShapeError, Types, differ, exactly, int_, int_list, norm_dim,
                    register)


def _spread(src: OpSource, name: str) -> list[str]:
    """`h.permute(0, 2, 1)`-style arguments: the items of a tuple attr, or the attr itself."""
    items = _items(src.attrs[name])
    return [_simplify(t) for t in items] if items is not None else [_tidy(src.attrs[name])]


# --- flatten ------------------------------------------------------------------------------------

def _flatten_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    s, e = norm_dim(a["start"], x.rank), norm_dim(a["end"], x.rank)
    if s > e:
        raise ShapeError(f"start dim {a['start']} comes after end dim {a['end']}")
    return [x.with_shape((*x.shape[:s], numel(x.shape[s:e + 1]), *x.shape[e + 1:]))]


def _flatten_args(src: OpSource) -> list[str | None]:
    """nn.Flatten's positional (start_dim, end_dim), each only when needed."""
    end = _kw(src, "end", -1, "")
    return [_kw(src, "start", 1, "") if end is None else _tidy(src.attrs["start"]), end]


def _flatten_onnx(ctx: OnnxContext) -> list[str]:
    rank = ctx.rank()
    s, e = ctx.axis(ctx.attrs["start"]), ctx.axis(ctx.attrs["end"])
    if s == e:
        return identity(ctx)
    if s == 1 and e == rank - 1:
        return [ctx.b.one("Flatten", [ctx.x], ctx.hint, axis=1)]
    sizes = [ctx.static(0, d) for d in range(s, e + 1)]
    return [reshape_range(ctx, ctx.x, s, e, [math.prod(sizes) if None not in sizes else -1], ctx.hint)]


register(OpDef(
    "flatten", (Param("start", int_(), 1, "int"), Param("end", int_(), -1, "int")), _flatten_infer,
    "merge dims start..end into one", "(B, C, H, W) -> (B, C*H*W)", "shape",
    torch=_method("nn.Flatten", "flatten", _flatten_args, lambda s: [_tidy(s.attrs["start"]), _kw(s, "end", -1, "")]),
    onnx=_flatten_onnx))


# --- reshape ------------------------------------------------------------------------------------

def _reshape_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    target = a["shape"]
    if sum(1 for d in target if d == -1) > 1 or any(d < -1 or d == 0 for d in target):
        raise ShapeError(f"shape {list(target)} may hold positive sizes and at most one -1")
    total = numel(x.shape)
    known = Dim.const(1)
    for d in target:
        known = known * (d if d != -1 else 1)
    if -1 in target:
        rest = exactly(total, known)
        if rest is None:
            raise ShapeError(f"cannot reshape {shape_str(x.shape)} ({total} elements) to {list(target)}: "
                             f"{total} is not a multiple of {known}")
        return [x.with_shape(tuple(rest if d == -1 else Dim.const(d) for d in target))]
    if differ(known, total):
        raise ShapeError(f"cannot reshape {shape_str(x.shape)} ({total} elements) to {list(target)} ({known} elements)")
    return [x.with_shape(tuple(Dim.const(d) for d in target))]


def _reshape_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Reshape", [ctx.x, ctx.b.ints(list(ctx.attrs["shape"]))], ctx.hint)]


register(OpDef(
    "reshape", (Param("shape", int_list, type_name="[int] (one -1 allowed)"),), _reshape_infer,
    "view with a new shape of the same size; -1 is inferred", "x -> shape", "shape",
    torch=_method("Reshape", "reshape", lambda s: [_tidy(s.attrs["shape"])], lambda s: _spread(s, "shape")),
    onnx=_reshape_onnx))


# --- unflatten ----------------------------------------------------------------------------------

def _unflatten_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    sizes = a["sizes"]
    if sum(1 for v in sizes if v == -1) > 1 or any(v < -1 or v == 0 for v in sizes):
        raise ShapeError(f"sizes {list(sizes)} may hold positive sizes and at most one -1")
    known = 1
    for v in sizes:
        known *= v if v != -1 else 1
    if -1 in sizes:
        rest = exactly(x.shape[d], known)
        if rest is None:
            raise ShapeError(f"dimension {a['dim']} of size `{x.shape[d]}` is not a multiple of {known}")
        new = tuple(rest if v == -1 else Dim.const(v) for v in sizes)
    elif differ(x.shape[d], Dim.const(known)):
        raise ShapeError(f"dimension {a['dim']} of size `{x.shape[d]}` cannot be split into {list(sizes)}")
    else:
        new = tuple(Dim.const(v) for v in sizes)
    return [x.with_shape((*x.shape[:d], *new, *x.shape[d + 1:]))]


def _unflatten_onnx(ctx: OnnxContext) -> list[str]:
    d = ctx.axis(ctx.attrs["dim"])
    return [reshape_range(ctx, ctx.x, d, d, list(ctx.attrs["sizes"]), ctx.hint)]


register(OpDef(
    "unflatten", (Param("dim", int_(), type_name="int"), Param("sizes", int_list, type_name="[int] (one -1 allowed)")),
    _unflatten_infer, "split one dim into several (heads: unflatten(2, [heads, -1]))",
    "(.., n, ..) -> (.., *sizes, ..), prod(sizes) = n", "shape",
    torch=_method("nn.Unflatten", "unflatten", lambda s: [_tidy(s.attrs["dim"]), _tidy(s.attrs["sizes"])]),
    onnx=_unflatten_onnx))


# --- permute, transpose -------------------------------------------------------------------------

def _permute_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    dims = [norm_dim(d, x.rank) for d in a["dims"]]
    if sorted(dims) != list(range(x.rank)):
        raise ShapeError(f"dims {list(a['dims'])} are not a permutation of the {x.rank} dims")
    return [x.with_shape(tuple(x.shape[d] for d in dims))]


def _permute_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Transpose", [ctx.x], ctx.hint, perm=[ctx.axis(d) for d in ctx.attrs["dims"]])]


def _transpose_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    i, j = norm_dim(a["dim0"], x.rank), norm_dim(a["dim1"], x.rank)
    shape = list(x.shape)
    shape[i], shape[j] = shape[j], shape[i]
    return [x.with_shape(tuple(shape))]


def _transpose_onnx(ctx: OnnxContext) -> list[str]:
    perm = list(range(ctx.rank()))
    i, j = ctx.axis(ctx.attrs["dim0"]), ctx.axis(ctx.attrs["dim1"])
    perm[i], perm[j] = perm[j], perm[i]
    return [ctx.b.one("Transpose", [ctx.x], ctx.hint, perm=perm)]


register(
    OpDef("permute", (Param("dims", int_list, type_name="[int]"),), _permute_infer, "reorder dims",
          "x -> x.shape[dims]", "shape",
          torch=_method("Permute", "permute", lambda s: [_tidy(s.attrs["dims"])], lambda s: _spread(s, "dims")),
          onnx=_permute_onnx),
    OpDef("transpose", (Param("dim0", int_(), type_name="int"), Param("dim1", int_(), type_name="int")),
          _transpose_infer, "swap two dims", "x -> x with dim0, dim1 swapped", "shape",
          torch=_method("Transpose", "transpose", lambda s: [_tidy(s.attrs["dim0"]), _tidy(s.attrs["dim1"])]),
          onnx=_transpose_onnx),
)


# --- unsqueeze, squeeze -------------------------------------------------------------------------

def _unsqueeze_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank + 1)
    return [x.with_shape((*x.shape[:d], Dim.const(1), *x.shape[d:]))]


def _unsqueeze_onnx(ctx: OnnxContext) -> list[str]:
    d = ctx.axis(ctx.attrs["dim"], ctx.rank() + 1)
    return [ctx.b.one("Unsqueeze", [ctx.x, ctx.b.ints([d], "axes")], ctx.hint)]


def _squeeze_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    if differ(x.shape[d], Dim.const(1)):
        raise ShapeError(f"dimension {a['dim']} has size `{x.shape[d]}`, not 1")
    return [x.with_shape((*x.shape[:d], *x.shape[d + 1:]))]


def _squeeze_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Squeeze", [ctx.x, ctx.b.ints([ctx.axis(ctx.attrs["dim"])], "axes")], ctx.hint)]


register(
    OpDef("unsqueeze", (Param("dim", int_(), type_name="int"),), _unsqueeze_infer, "insert a size-1 dim",
          "x -> x with 1 inserted at dim", "shape",
          torch=_method("Unsqueeze", "unsqueeze", lambda s: [_tidy(s.attrs["dim"])]),
          onnx=_unsqueeze_onnx),
    OpDef("squeeze", (Param("dim", int_(), type_name="int"),), _squeeze_infer, "drop a size-1 dim",
          "x -> x without dim (must be 1)", "shape",
          torch=_method("Squeeze", "squeeze", lambda s: [_tidy(s.attrs["dim"])]),
          onnx=_squeeze_onnx),
)


# --- expand -------------------------------------------------------------------------------------

def _expand_dims(a: Attrs, rank: int) -> list[int]:
    dims = [norm_dim(d, rank) for d in a["dims"]]
    if len(set(dims)) != len(dims):
        raise ShapeError(f"dims {list(a['dims'])} name a dimension twice")
    return dims


def _expand_infer(a: Attrs, ins: Types) -> Types:
    x, like = ins
    if x.rank != like.rank:
        raise ShapeError(f"expands a tensor to the sizes of one of the same rank, got {shape_str(x.shape)} "
                         f"and {shape_str(like.shape)}", 1)
    shape = list(x.shape)
    for d in _expand_dims(a, x.rank):
        if differ(x.shape[d], Dim.const(1)):
            raise ShapeError(f"only a dimension of size 1 can be expanded; dimension {d} has size `{x.shape[d]}`")
        shape[d] = like.shape[d]
    return [x.with_shape(tuple(shape))]


def _expand_source(src: OpSource, xs: list[str]) -> str:
    """`cls_token.expand(x.shape[0], -1, -1)`, as torchvision's ViT writes it."""
    dims = {d % len(src.in_shapes[0]) for d in _const(src, "dims")}
    sizes = [f"{_atom(xs[1])}.shape[{d}]" if d in dims else "-1" for d in range(len(src.in_shapes[0]))]
    return f"{_atom(xs[0])}.expand({', '.join(sizes)})"


def _expand_onnx(ctx: OnnxContext) -> list[str]:
    """Expand to a shape of 1s and the second input's sizes at `dims` (Shape of it where they are
    symbolic). ONNX's shape inference cannot see into a computed shape, so then a Reshape with
    the constant sizes (0 = keep) states what the output is."""
    b, rank = ctx.b, ctx.rank()
    dims = set(_expand_dims(ctx.attrs, rank))
    sizes = [ctx.static(1, d) if d in dims else 1 for d in range(rank)]
    if None not in sizes:
        return [b.one("Expand", [ctx.x, b.ints(sizes)], ctx.hint)]
    pieces = [b.ints([v]) if v is not None else b.one("Shape", [ctx.inputs[1]], f"{ctx.hint}/size{d}", start=d, end=d + 1)
              for d, v in enumerate(sizes)]
    shape = b.one("Concat", pieces, f"{ctx.hint}/shape", axis=0)
    y = b.one("Expand", [ctx.x, shape], f"{ctx.hint}/expand")
    out = ctx.out_types[0].shape
    return [b.one("Reshape", [y, b.ints([d.value if d.is_const else 0 for d in out])], ctx.hint)]


register(OpDef(
    "expand", (Param("dims", int_list, (0,), "[int]"),), _expand_infer,
    "repeat size-1 dims to the second input's sizes there (a class token to the batch: (cls, x) -> expand)",
    "(1, .., n), (B, .., n) -> (B, .., n)", "shape", inputs=(2, 2),
    torch=_multi(_expand_source), onnx=_expand_onnx))
