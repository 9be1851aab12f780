"""Attention: multi-head attention (`mha`), projection-free dot-product attention (`attention`)
and Bahdanau's additive attention.

PyTorch forms: the MultiheadAttention and AdditiveAttention helpers of runtime/layers/ (dlc.runtime.layers),
and F.scaled_dot_product_attention. ONNX forms:
  - mha, attention: scaled dot-product attention as F.scaled_dot_product_attention computes it
    (scores scaled after q k^T, causal mask aligned top-left: query i sees keys 0..i, masked
    scores -inf, softmax over keys); dropout is the identity.
  - additive_attention: Bahdanau's scores v^T tanh(W q + U m), softmax over memory steps.
"""
from __future__ import annotations

import math

from ..emit.onnx.context import ONNX_DTYPES, OnnxContext
from ..emit.torch.forms import (OpSource, _call, _kw, _multi, _size, _tidy, _value, _weighted)
from ..ir.dims import Dim, numel, shape_str
from .table import (Attrs, OpDef, Param, ShapeError, Types, bool_, concrete, differ, divides, int_,
                    need_float, need_rank, prob, register, shapes_differ)

_FLOAT_NUMPY = {"f32": "float32", "f64": "float64", "f16": "float16"}


def _typed_scalar(ctx: OnnxContext, value: float, dtype: str, hint: str) -> str:
    """A 0-d constant of a float dtype (bf16, which numpy lacks, through a Cast)."""
    if dtype in _FLOAT_NUMPY:
        return ctx.b.const(value, hint, _FLOAT_NUMPY[dtype])
    return ctx.b.one("Cast", [ctx.b.const(value, hint, "float32")], f"{ctx.hint}/{hint}", to=ONNX_DTYPES[dtype])


def _sdpa(ctx: OnnxContext, q: str, k: str, v: str, rank: int, scale: float | str | None, causal: bool,
          lengths: tuple[int | None, int | None], dtype: str) -> str:
    """softmax(q k^T * scale [masked]) v over the last two dims, as F.scaled_dot_product_attention.

    `scale` is a number, a tensor name, or None for no scaling; `lengths` are (Tq, Tk) when constant."""
    from onnx import helper  # here, not at the top: the op table loads without onnx

    b, hint = ctx.b, ctx.hint
    perm = [*range(rank - 2), rank - 1, rank - 2]
    scores = b.one("MatMul", [q, b.one("Transpose", [k], f"{hint}/k_t", perm=perm)], f"{hint}/scores")
    if isinstance(scale, str):
        scores = b.one("Mul", [scores, scale], f"{hint}/scaled")
    elif scale is not None:
        scores = b.one("Mul", [scores, _typed_scalar(ctx, scale, dtype, "scale")], f"{hint}/scaled")
    if causal:
        tq, tk = lengths
        if tq is not None and tk is not None:
            import numpy as np  # the constant mask, built here: the op table loads without numpy

            mask = b.const(np.tril(np.ones((tq, tk), dtype=bool)), "causal_mask")
        else:  # ones of shape (Tq, Tk) read from the scores, lower triangle kept (top-left aligned)
            size = b.one("Shape", [scores], f"{hint}/mask_shape", start=-2)
            ones = b.one("ConstantOfShape", [size], f"{hint}/ones",
                         value=helper.make_tensor("one", ONNX_DTYPES["bool"], [1], [True]))
            mask = b.one("Trilu", [ones], f"{hint}/causal_mask", upper=0)
        scores = b.one("Where", [mask, scores, _typed_scalar(ctx, -math.inf, dtype, "neg_inf")], f"{hint}/masked")
    weights = b.one("Softmax", [scores], f"{hint}/weights", axis=-1)
    return b.one("MatMul", [weights, v], f"{hint}/context")


def _project(ctx: OnnxContext, x: str, name: str, out: str | None = None) -> str:
    """nn.Linear `name` applied to x: x W^T (+ b); the result is named after `out` when given."""
    w = ctx.b.one("Transpose", [ctx.weights[f"{name}.weight"]], f"{ctx.hint}/{name}/weight_t", perm=[1, 0])
    biased = f"{name}.bias" in ctx.weights
    y = ctx.b.one("MatMul", [x, w], f"{ctx.hint}/{name}" if biased or out is None else out)
    if biased:
        y = ctx.b.one("Add", [y, ctx.weights[f"{name}.bias"]], out or f"{ctx.hint}/{name}")
    return y


# --- multi-head attention ---------------------------------------------------------------------------

def _qkv(ins: Types) -> Types:
    return [ins[0], ins[0], ins[0]] if len(ins) == 1 else [ins[0], ins[1], ins[1]] if len(ins) == 2 else list(ins)


def _mha_infer(a: Attrs, ins: Types) -> Types:
    q, k, v = _qkv(ins)
    for i, t in enumerate(ins):
        need_rank(t, (3,), "(B, T, E)", i)
        need_float(t, i)
    e = concrete(q.shape[2], "the embedding dimension")
    if not divides(a["heads"], e):
        raise ShapeError(f"embedding dimension {e} is not divisible by heads={a['heads']}")
    if shapes_differ(k.shape[:2], v.shape[:2]):
        raise ShapeError(f"keys {shape_str(k.shape)} and values {shape_str(v.shape)} differ in batch or length", 2)
    if differ(q.shape[0], k.shape[0]):
        raise ShapeError(f"queries {shape_str(q.shape)} and keys {shape_str(k.shape)} differ in batch size", 1)
    return [q]


def _mha_weights(a: Attrs, ins: Types):
    q, k, v = _qkv(ins)
    e = q.shape[2]
    out = []
    for name, src in (("q_proj", q), ("k_proj", k), ("v_proj", v), ("out_proj", q)):
        out.append((f"{name}.weight", (e, src.shape[2]), True))
        if a["bias"]:
            out.append((f"{name}.bias", (e,), True))
    return out


def _mha_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    q, k, v = _qkv(ins)
    b, tq, e = q.shape
    tk = k.shape[1]
    proj = b * tq * e * e * 2 + b * tk * e * (k.shape[2] + v.shape[2])
    return proj + b * tq * tk * e * 2


def _mha_module(src: OpSource) -> str:
    e = _size(src, 0, -1)
    kdim = _size(src, 1, -1) if len(src.in_shapes) > 1 else e
    vdim = _size(src, 2, -1) if len(src.in_shapes) > 2 else kdim
    return _call("MultiheadAttention", [
        e, _tidy(src.attrs["heads"]), _kw(src, "dropout", 0.0), _kw(src, "bias", True), _kw(src, "causal", False),
        f"kdim={kdim}" if kdim != e else None, f"vdim={vdim}" if vdim != kdim else None])


def _mha_onnx(ctx: OnnxContext) -> list[str]:
    n = len(ctx.inputs)
    sources = [0, 0, 0] if n == 1 else [0, 1, 1] if n == 2 else [0, 1, 2]  # input index of q, k, v
    e = ctx.static(0, 2)
    heads = ctx.attrs["heads"]
    head_dim = e // heads
    split = ctx.b.ints([0, 0, heads, head_dim])  # (B, T, E) -> (B, T, heads, E/heads)
    q, k, v = (ctx.b.one("Transpose", [ctx.b.one("Reshape", [_project(ctx, ctx.inputs[i], name), split],
                                                 f"{ctx.hint}/{name}/heads")],
                         f"{ctx.hint}/{name}/heads_first", perm=[0, 2, 1, 3])  # (B, heads, T, E/heads)
               for i, name in zip(sources, ("q_proj", "k_proj", "v_proj"), strict=True))
    lengths = (ctx.static(0, 1), ctx.static(sources[1], 1))
    out = _sdpa(ctx, q, k, v, 4, 1.0 / math.sqrt(head_dim), ctx.attrs["causal"], lengths, ctx.in_types[0].dtype)
    out = ctx.b.one("Transpose", [out], f"{ctx.hint}/heads_last", perm=[0, 2, 1, 3])
    out = ctx.b.one("Reshape", [out, ctx.b.ints([0, 0, e])], f"{ctx.hint}/merge_heads")
    return [_project(ctx, out, "out_proj", ctx.hint)]


register(OpDef(
    "mha", (Param("heads", int_(1), type_name="int"), Param("causal", bool_, False, "bool"),
            Param("dropout", prob, 0.0, "number"), Param("bias", bool_, True, "bool")),
    _mha_infer, "multi-head attention: self (x), cross (q, kv) or (q, k, v); `causal` masks future steps",
    "(B, Tq, E)[, (B, Tk, Ek)[, (B, Tk, Ev)]] -> (B, Tq, E)", "attention", inputs=(1, 3),
    weights=_mha_weights, macs=_mha_macs, elementwise_flops=0,
    torch=_weighted("mha", _mha_module, ("MultiheadAttention",)), onnx=_mha_onnx))


# --- dot-product attention without projections ----------------------------------------------------

def _attention_infer(a: Attrs, ins: Types) -> Types:
    q, k, v = ins
    if not q.rank == k.rank == v.rank or q.rank < 2:
        raise ShapeError(f"q, k, v must have the same rank >= 2, got {shape_str(q.shape)}, {shape_str(k.shape)}, {shape_str(v.shape)}")
    if differ(q.shape[-1], k.shape[-1]):
        raise ShapeError(f"query and key feature sizes differ: `{q.shape[-1]}` vs `{k.shape[-1]}`", 1)
    if differ(k.shape[-2], v.shape[-2]):
        raise ShapeError(f"keys and values differ in length: `{k.shape[-2]}` vs `{v.shape[-2]}`", 2)
    return [v.with_shape((*q.shape[:-1], v.shape[-1]))]


def _attention_call(src: OpSource, inputs: list[str]) -> str:
    scaled = src.attrs["scaled"]
    scale = None if _value(scaled) is True else "scale=1.0" if _value(scaled) is False else \
        f"scale=None if {scaled} else 1.0"
    return _call("F.scaled_dot_product_attention", [*inputs, _kw(src, "causal", False, "is_causal"), scale])


def _attention_onnx(ctx: OnnxContext) -> list[str]:
    q, k, v = ctx.inputs
    rank = ctx.in_types[0].rank
    dtype = ctx.in_types[0].dtype
    scale: float | str | None = None
    if ctx.attrs["scaled"]:
        d = ctx.static(0, rank - 1)
        if d is not None:
            scale = 1.0 / math.sqrt(d)
        else:  # 1/sqrt(D) from q's shape at run time
            size = ctx.b.one("Shape", [q], f"{ctx.hint}/d", start=-1)
            size = ctx.b.one("Cast", [size], f"{ctx.hint}/d_float", to=ONNX_DTYPES[dtype])
            scale = ctx.b.one("Reciprocal", [ctx.b.one("Sqrt", [size], f"{ctx.hint}/sqrt_d")], f"{ctx.hint}/scale")
    lengths = (ctx.static(0, rank - 2), ctx.static(1, rank - 2))
    return [_sdpa(ctx, q, k, v, rank, scale, ctx.attrs["causal"], lengths, dtype)]


register(OpDef(
    "attention", (Param("causal", bool_, False, "bool"), Param("scaled", bool_, True, "bool")),
    _attention_infer, "softmax(q k^T / sqrt(d)) v without projections (Luong's dot attention)",
    "(.., Tq, D), (.., Tk, D), (.., Tk, Dv) -> (.., Tq, Dv)", "attention", inputs=(3, 3),
    macs=lambda a, ins, outs: numel(ins[0].shape) * ins[1].shape[-2] + numel(outs[0].shape) * ins[1].shape[-2],
    torch=_multi(_attention_call), onnx=_attention_onnx))


# --- additive (Bahdanau) attention ----------------------------------------------------------------

def _additive_infer(a: Attrs, ins: Types) -> Types:
    q, mem = ins
    need_rank(q, (3,), "(B, Tq, Dq)")
    need_rank(mem, (3,), "(B, Tk, Dk)", 1)
    concrete(q.shape[2], "the query feature size")
    concrete(mem.shape[2], "the memory feature size", 1)
    return [mem.with_shape((q.shape[0], q.shape[1], mem.shape[2]))]


def _additive_weights(a: Attrs, ins: Types):
    u = Dim.of(a["units"])
    return [("query.weight", (u, ins[0].shape[2]), True), ("key.weight", (u, ins[1].shape[2]), True),
            ("score.weight", (Dim.const(1), u), True)]


def _additive_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    q, mem = ins
    b, tq, dq = q.shape
    tk, dk = mem.shape[1], mem.shape[2]
    return b * a["units"] * (tq * dq + tk * dk + tq * tk) + b * tq * tk * dk


def _additive_onnx(ctx: OnnxContext) -> list[str]:
    b, hint = ctx.b, ctx.hint
    q, memory = ctx.inputs
    wq = b.one("Unsqueeze", [_project(ctx, q, "query"), b.ints([2], "axes")], f"{hint}/query_steps")  # (B, Tq, 1, U)
    wk = b.one("Unsqueeze", [_project(ctx, memory, "key"), b.ints([1], "axes")], f"{hint}/key_steps")  # (B, 1, Tk, U)
    hidden = b.one("Tanh", [b.one("Add", [wq, wk], f"{hint}/sum")], f"{hint}/tanh")
    scores = b.one("Squeeze", [_project(ctx, hidden, "score"), b.ints([-1], "axes")], f"{hint}/scores")
    weights = b.one("Softmax", [scores], f"{hint}/weights", axis=-1)
    return [b.one("MatMul", [weights, memory], hint)]


register(OpDef(
    "additive_attention", (Param("units", int_(1), type_name="int"),), _additive_infer,
    "Bahdanau soft attention: context = sum_i softmax(v^T tanh(W q + U h_i)) h_i",
    "(B, Tq, Dq), (B, Tk, Dk) -> (B, Tq, Dk)", "attention", inputs=(2, 2),
    weights=_additive_weights, macs=_additive_macs,
    torch=_weighted("additive_attention", lambda s: _call("AdditiveAttention", [
        _size(s, 0, -1), _size(s, 1, -1), _tidy(s.attrs["units"])]), ("AdditiveAttention",)),
    onnx=_additive_onnx))
