"""Embeddings and positional encodings: embedding, pos_embedding, sinusoidal_pe.

PyTorch forms: nn.Embedding and the helpers of runtime/layers/ (dlc.runtime.layers). ONNX forms:
  - embedding: Gather rows of the table (padding_idx only matters for training).
  - pos_embedding, sinusoidal_pe: x + table[:T]; T is read from x's shape at run time when it
    is symbolic, so one model serves every length up to max_len. The sinusoidal table is a
    constant built in float32 the way `sinusoidal_table` builds it (max_len rows when T is
    symbolic, T rows when it is constant).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..emit.onnx.context import ONNX_DTYPES, NoOnnxForm, OnnxContext
from ..emit.torch.forms import TorchEntry, _call, _kw, _size, _tidy, _unary, _weighted
from ..ir.dims import Dim
from ..ir.types import INT_DTYPES
from .table import (Attrs, OpDef, Param, ShapeError, Types, concrete, divides, int_, need_float, need_rank,
                    optional, register)

if TYPE_CHECKING:
    import numpy as np


# --- embedding ------------------------------------------------------------------------------------

def _embedding_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    if x.dtype not in INT_DTYPES:
        raise ShapeError(f"expects integer token ids, got {x.dtype}")
    return [x.__class__("f32", (*x.shape, Dim.of(a["dim"])))]


def _embedding_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Gather", [ctx.weights["weight"], ctx.inputs[0]], ctx.hint, axis=0)]


register(OpDef(
    "embedding", (Param("num", int_(1), type_name="int"), Param("dim", int_(1), type_name="int"),
                  Param("padding_idx", optional(int_(0)), None, "int | none")),
    _embedding_infer, "lookup table of `num` vectors of size `dim`", "(...) int -> (..., dim) f32", "sequence",
    weights=lambda a, ins: [("weight", (Dim.const(a["num"]), Dim.const(a["dim"])), True)],
    torch=_weighted("embedding", lambda s: _call("nn.Embedding", [
        _tidy(s.attrs["num"]), _tidy(s.attrs["dim"]), _kw(s, "padding_idx", None)])),
    onnx=_embedding_onnx))


# --- positions ------------------------------------------------------------------------------------

def _check_positions(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    need_rank(x, (3,), "(B, T, D)")
    need_float(x)
    t = x.shape[1]
    if t.is_const and t.value > a["max_len"]:
        raise ShapeError(f"sequence length {t} exceeds max_len={a['max_len']}")
    return [x]


def _first_rows(ctx: OnnxContext, table: str) -> str:
    """table[:T] for T = x.shape[1]: a constant Slice when T is constant, else read from x's shape."""
    t = ctx.static(0, 1)
    if t is not None:
        end = ctx.b.ints([t], "end")
    else:
        end = ctx.b.one("Shape", [ctx.inputs[0]], f"{ctx.hint}/T", start=1, end=2)
    return ctx.b.one("Slice", [table, ctx.b.ints([0], "start"), end, ctx.b.ints([0], "axes")], f"{ctx.hint}/rows")


def _pos_embedding_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Add", [ctx.inputs[0], _first_rows(ctx, ctx.weights["weight"])], ctx.hint)]


def _sinusoidal_infer(a: Attrs, ins: Types) -> Types:
    out = _check_positions(a, ins)
    if not divides(2, concrete(ins[0].shape[2], "the model dimension")):
        raise ShapeError("sinusoidal encodings need an even model dimension")
    return out


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
    """`sinusoidal_table` of the PyTorch helpers in numpy: the same float32 steps (positions times
    frequencies rounded to float32, then sin on even and cos on odd features). The frequencies are
    exp correctly rounded to float32; PyTorch's vectorized exp differs from that by one ulp in a
    few of them, which moves an encoding at position p by at most about p * 6e-8."""
    import numpy as np  # here, not at the top: the op table loads without numpy

    position = np.arange(length, dtype=np.float32)[:, None]
    exponent = np.arange(0, dim, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / dim)
    freq = np.exp(exponent.astype(np.float64)).astype(np.float32)
    angle = (position * freq).astype(np.float64)  # the float32 product, as PyTorch rounds it
    table = np.zeros((length, dim), dtype=np.float32)
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle)
    return table


def _sinusoidal_torch() -> TorchEntry:
    module = lambda s: _call("SinusoidalPositionalEncoding", [_size(s, 0, -1), _kw(s, "max_len", 5000)])
    return _unary(module, lambda s, x: f"add_sinusoidal_encoding({x})",
                  helpers=("sinusoidal_table", "add_sinusoidal_encoding", "SinusoidalPositionalEncoding"))


def _sinusoidal_onnx(ctx: OnnxContext) -> list[str]:
    dim = ctx.static(0, 2)
    if dim is None:
        raise NoOnnxForm("the model dimension must be a constant")
    t = ctx.static(0, 1)
    rows = ctx.b.const(sinusoidal_table(t if t is not None else ctx.attrs["max_len"], dim),
                       f"{ctx.hint}.sinusoidal_table")
    if t is None:
        rows = _first_rows(ctx, rows)
    dtype = ctx.in_types[0].dtype
    if dtype != "f32":  # `.to(x)`: the float32 table cast to x's dtype
        rows = ctx.b.one("Cast", [rows], f"{ctx.hint}/table", to=ONNX_DTYPES[dtype])
    return [ctx.b.one("Add", [ctx.inputs[0], rows], ctx.hint)]


register(
    OpDef("pos_embedding", (Param("max_len", int_(1), type_name="int"),), _check_positions,
          "add a learned position vector to each step (GPT, BERT)", "(B, T, D) -> (B, T, D), T <= max_len", "sequence",
          weights=lambda a, ins: [("weight", (Dim.const(a["max_len"]), ins[0].shape[2]), True)],
          elementwise_flops=1,
          torch=_weighted("pos_embedding", lambda s: _call("PositionalEmbedding", [
              _tidy(s.attrs["max_len"]), _size(s, 0, -1)]), ("PositionalEmbedding",)),
          onnx=_pos_embedding_onnx),
    OpDef("sinusoidal_pe", (Param("max_len", int_(1), 5000, "int"),), _sinusoidal_infer,
          "add the fixed sin/cos encodings of Attention Is All You Need", "(B, T, D) -> (B, T, D), D even",
          "sequence", elementwise_flops=1, torch=_sinusoidal_torch(), onnx=_sinusoidal_onnx),
)
