"""Indexing and reductions: select, slice, sum, mean.

PyTorch forms index where the dim is a literal (`h[:, 0]`, `h[..., 1:]`) and fall back to methods
(`h.select(d, 0)`) or helper modules (`Slice`, `Sum`) otherwise; ONNX forms are Gather, Slice and
ReduceSum / ReduceMean.
"""
from __future__ import annotations

from typing import Any

from ..emit.onnx.context import Converter, OnnxContext
from ..emit.torch.forms import (OpSource, TorchEntry, _atom, _call, _is_default, _kw, _method, _simplify, _tidy, _unary, _value)
from ..ir.dims import Dim
from .table import Attrs, OpDef, Param, ShapeError, Types, bool_, int_, int_list, norm_dim, optional, register

INT64_MAX = 2**63 - 1


def _index(x: str, dim: Any, key: str) -> str | None:
    """`x[:, key]` for a literal dim (`x[..., key]` counting from the end); None otherwise."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        return None
    lead = [":"] * dim if dim >= 0 else ["..."]
    trail = [":"] * (-dim - 1) if dim < 0 else []
    return f"{_atom(x)}[{', '.join([*lead, key, *trail])}]"


# --- select ---------------------------------------------------------------------------------------

def _select_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    size = x.shape[d]
    if size.is_const and not -size.value <= a["index"] < size.value:
        raise ShapeError(f"index {a['index']} is out of range for dimension {a['dim']} of size {size}")
    return [x.with_shape((*x.shape[:d], *x.shape[d + 1:]))]


def _select_call(src: OpSource, x: str) -> str:
    index = _tidy(src.attrs["index"])
    return _index(x, _value(src.attrs["dim"]), index) or f"{_atom(x)}.select({_tidy(src.attrs['dim'])}, {index})"


def _select_onnx(ctx: OnnxContext) -> list[str]:
    index = ctx.b.const(ctx.attrs["index"], "index", "int64")
    return [ctx.b.one("Gather", [ctx.x, index], ctx.hint, axis=ctx.axis(ctx.attrs["dim"]))]


register(OpDef(
    "select", (Param("dim", int_(), type_name="int"), Param("index", int_(), type_name="int")), _select_infer,
    "take one index along `dim`, dropping it (BERT's first token: select(1, 0))", "(.., n, ..) -> (.., ..)",
    "indexing",
    torch=_unary(lambda s: _call("Select", [_tidy(s.attrs["dim"]), _tidy(s.attrs["index"])]), _select_call, ("Select",)),
    onnx=_select_onnx))


# --- slice ----------------------------------------------------------------------------------------

def _slice_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    size = x.shape[d]
    start, end, step = a["start"], a["end"], a["step"]
    if start < 0 or (end is not None and end < start):
        raise ShapeError("slice needs 0 <= start <= end")
    stop = size if end is None else Dim.const(end)
    if size.is_const and stop.value > size.value:
        stop = size
    elif end is not None and not size.is_const and size.is_static:
        stop = Dim.sym("?slice_end")  # min(end, size): decided by the size the module sees
    length = (stop - start + step - 1) // step
    if length.is_const and length.value <= 0:
        raise ShapeError(f"slice [{start}:{end}] of a dimension of size {size} is empty")
    return [x.with_shape((*x.shape[:d], length, *x.shape[d + 1:]))]


def _slice_key(src: OpSource) -> str:
    start = "" if _is_default(src.attrs["start"], 0) else _simplify(src.attrs["start"])
    end = "" if _is_default(src.attrs["end"], None) else _simplify(src.attrs["end"])
    step = "" if _is_default(src.attrs["step"], 1) else f":{_simplify(src.attrs['step'])}"
    return f"{start}:{end}{step}"


def _slice_args(src: OpSource) -> list[str | None]:
    return [_tidy(src.attrs["dim"]), _kw(src, "start", 0), _kw(src, "end", None), _kw(src, "step", 1)]


def _slice_call(src: OpSource, x: str) -> str:
    return _index(x, _value(src.attrs["dim"]), _slice_key(src)) or f"{_call('Slice', _slice_args(src))}({x})"


def _slice_onnx(ctx: OnnxContext) -> list[str]:
    a = ctx.attrs
    end = INT64_MAX if a["end"] is None else a["end"]
    inputs = [ctx.x, ctx.b.ints([a["start"]], "starts"), ctx.b.ints([end], "ends"),
              ctx.b.ints([ctx.axis(a["dim"])], "axes"), ctx.b.ints([a["step"]], "steps")]
    return [ctx.b.one("Slice", inputs, ctx.hint)]


register(OpDef(
    "slice", (Param("dim", int_(), type_name="int"), Param("start", int_(0), 0, "int"),
              Param("end", optional(int_(0)), None, "int | none"), Param("step", int_(1), 1, "int")),
    _slice_infer, "a range along `dim`", "(.., n, ..) -> (.., ceil((end-start)/step), ..)", "indexing",
    torch=_unary(lambda s: _call("Slice", _slice_args(s)), _slice_call, ("Slice",)),
    onnx=_slice_onnx))


# --- sum, mean ------------------------------------------------------------------------------------

def _reduce_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    dims = {norm_dim(d, x.rank) for d in a["dim"]}
    if len(dims) != len(a["dim"]):
        raise ShapeError(f"dim {list(a['dim'])} names a dimension twice")
    shape = tuple(Dim.const(1) if i in dims else s for i, s in enumerate(x.shape) if a["keepdim"] or i not in dims)
    return [x.with_shape(shape)]


def _reduce_torch(cls: str, method: str) -> TorchEntry:
    return _method(cls, method, lambda s: [_kw(s, "dim", -1), _kw(s, "keepdim", False)],
                   lambda s: [f"dim={_tidy(s.attrs['dim'], compact=True)}", _kw(s, "keepdim", False)])


def _reduce_onnx(op_type: str) -> Converter:
    def convert(ctx: OnnxContext) -> list[str]:
        axes = ctx.b.ints([ctx.axis(d) for d in ctx.attrs["dim"]], "axes")
        return [ctx.b.one(op_type, [ctx.x, axes], ctx.hint, keepdims=int(ctx.attrs["keepdim"]))]
    return convert


_REDUCE_PARAMS = (Param("dim", int_list, -1, "int | [int]"), Param("keepdim", bool_, False, "bool"))

register(
    OpDef("sum", _REDUCE_PARAMS, _reduce_infer, "sum over dims", "x -> x without dims (or size 1 with keepdim)",
          "indexing", input_flops=1, torch=_reduce_torch("Sum", "sum"), onnx=_reduce_onnx("ReduceSum")),
    OpDef("mean", _REDUCE_PARAMS, _reduce_infer, "mean over dims", "x -> x without dims (or size 1 with keepdim)",
          "indexing", input_flops=1, torch=_reduce_torch("Mean", "mean"), onnx=_reduce_onnx("ReduceMean")),
)
