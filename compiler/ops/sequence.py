"""Sequence models: embeddings, positional encodings, attention and recurrent layers."""
from __future__ import annotations

from ..ir.dims import Dim, numel, shape_str
from ..ir.types import INT_DTYPES
from .table import (Attrs, OpDef, Param, ShapeError, Types, bool_, concrete, int_, need_float, need_rank, optional,
                    prob, register)

# --- embeddings and positions ----------------------------------------------------------------


def _embedding_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    if x.dtype not in INT_DTYPES:
        raise ShapeError(f"expects integer token ids, got {x.dtype}")
    return [x.__class__("f32", (*x.shape, Dim.const(a["dim"])))]


def _check_positions(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    need_rank(x, (3,), "(B, T, D)")
    need_float(x)
    t = x.shape[1]
    if t.is_const and t.value > a["max_len"]:
        raise ShapeError(f"sequence length {t} exceeds max_len={a['max_len']}")
    return [x]


def _sinusoidal_infer(a: Attrs, ins: Types) -> Types:
    out = _check_positions(a, ins)
    if concrete(ins[0].shape[2], "the model dimension") % 2:
        raise ShapeError("sinusoidal encodings need an even model dimension")
    return out


register(
    OpDef("embedding", (Param("num", int_(1), type_name="int"), Param("dim", int_(1), type_name="int"),
                        Param("padding_idx", optional(int_(0)), None, "int | none")),
          _embedding_infer, "lookup table of `num` vectors of size `dim`", "(...) int -> (..., dim) f32", "sequence",
          weights=lambda a, ins: [("weight", (Dim.const(a["num"]), Dim.const(a["dim"])), True)]),
    OpDef("pos_embedding", (Param("max_len", int_(1), type_name="int"),), _check_positions,
          "add a learned position vector to each step (GPT, BERT)", "(B, T, D) -> (B, T, D), T <= max_len", "sequence",
          weights=lambda a, ins: [("weight", (Dim.const(a["max_len"]), ins[0].shape[2]), True)],
          elementwise_flops=1),
    OpDef("sinusoidal_pe", (Param("max_len", int_(1), 5000, "int"),), _sinusoidal_infer,
          "add the fixed sin/cos encodings of Attention Is All You Need", "(B, T, D) -> (B, T, D), D even",
          "sequence", elementwise_flops=1),
)


# --- attention --------------------------------------------------------------------------------

def _qkv(ins: Types) -> Types:
    return [ins[0], ins[0], ins[0]] if len(ins) == 1 else [ins[0], ins[1], ins[1]] if len(ins) == 2 else list(ins)


def _mha_infer(a: Attrs, ins: Types) -> Types:
    q, k, v = _qkv(ins)
    for i, t in enumerate(ins):
        need_rank(t, (3,), "(B, T, E)", i)
        need_float(t, i)
    e = concrete(q.shape[2], "the embedding dimension")
    if e % a["heads"]:
        raise ShapeError(f"embedding dimension {e} is not divisible by heads={a['heads']}")
    if k.shape[:2] != v.shape[:2]:
        raise ShapeError(f"keys {shape_str(k.shape)} and values {shape_str(v.shape)} differ in batch or length", 2)
    if q.shape[0] != k.shape[0]:
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


def _attention_infer(a: Attrs, ins: Types) -> Types:
    q, k, v = ins
    if not q.rank == k.rank == v.rank or q.rank < 2:
        raise ShapeError(f"q, k, v must have the same rank >= 2, got {shape_str(q.shape)}, {shape_str(k.shape)}, {shape_str(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"query and key feature sizes differ: `{q.shape[-1]}` vs `{k.shape[-1]}`", 1)
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"keys and values differ in length: `{k.shape[-2]}` vs `{v.shape[-2]}`", 2)
    return [v.with_shape((*q.shape[:-1], v.shape[-1]))]


def _additive_infer(a: Attrs, ins: Types) -> Types:
    q, mem = ins
    need_rank(q, (3,), "(B, Tq, Dq)")
    need_rank(mem, (3,), "(B, Tk, Dk)", 1)
    concrete(q.shape[2], "the query feature size")
    concrete(mem.shape[2], "the memory feature size", 1)
    return [mem.with_shape((q.shape[0], q.shape[1], mem.shape[2]))]


def _additive_weights(a: Attrs, ins: Types):
    u = Dim.const(a["units"])
    return [("query.weight", (u, ins[0].shape[2]), True), ("key.weight", (u, ins[1].shape[2]), True),
            ("score.weight", (Dim.const(1), u), True)]


def _additive_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    q, mem = ins
    b, tq, dq = q.shape
    tk, dk = mem.shape[1], mem.shape[2]
    return b * a["units"] * (tq * dq + tk * dk + tq * tk) + b * tq * tk * dk


register(
    OpDef("mha", (Param("heads", int_(1), type_name="int"), Param("causal", bool_, False, "bool"),
                  Param("dropout", prob, 0.0, "number"), Param("bias", bool_, True, "bool")),
          _mha_infer, "multi-head attention: self (x), cross (q, kv) or (q, k, v); `causal` masks future steps",
          "(B, Tq, E)[, (B, Tk, Ek)[, (B, Tk, Ev)]] -> (B, Tq, E)", "attention", inputs=(1, 3),
          weights=_mha_weights, macs=_mha_macs, elementwise_flops=0),
    OpDef("attention", (Param("causal", bool_, False, "bool"), Param("scaled", bool_, True, "bool")),
          _attention_infer, "softmax(q k^T / sqrt(d)) v without projections (Luong's dot attention)",
          "(.., Tq, D), (.., Tk, D), (.., Tk, Dv) -> (.., Tq, Dv)", "attention", inputs=(3, 3),
          macs=lambda a, ins, outs: numel(ins[0].shape) * ins[1].shape[-2] + numel(outs[0].shape) * ins[1].shape[-2]),
    OpDef("additive_attention", (Param("units", int_(1), type_name="int"),), _additive_infer,
          "Bahdanau soft attention: context = sum_i softmax(v^T tanh(W q + U h_i)) h_i",
          "(B, Tq, Dq), (B, Tk, Dk) -> (B, Tq, Dk)", "attention", inputs=(2, 2),
          weights=_additive_weights, macs=_additive_macs),
)


# --- recurrent layers ------------------------------------------------------------------------

def _rnn_infer(gates: int, n_states: int):
    def infer(a: Attrs, ins: Types) -> Types:
        x = ins[0]
        need_rank(x, (3,), "(B, T, I) (batch first)")
        need_float(x)
        concrete(x.shape[2], "the input feature size")
        if gates == 4 and len(ins) == 2:
            raise ShapeError("an LSTM takes (x) or (x, h0, c0): the cell state c0 is missing", 1)
        dirs = 2 if a["bidirectional"] else 1
        h = Dim.const(a["hidden"])
        state = x.with_shape((Dim.const(dirs * a["layers"]), x.shape[0], h))
        for i, s in enumerate(ins[1:], start=1):
            if s.shape != state.shape:
                raise ShapeError(f"initial state {i} has shape {shape_str(s.shape)}, expected {shape_str(state.shape)}", i)
        out = x.with_shape((x.shape[0], x.shape[1], Dim.const(dirs * a["hidden"])))
        return [out] + ([state] * n_states if a["state"] else [])
    return infer


def _rnn_weights(gates: int):
    def weights(a: Attrs, ins: Types):
        h = a["hidden"]
        dirs = ("", "_reverse") if a["bidirectional"] else ("",)
        out = []
        for layer in range(a["layers"]):
            cin = ins[0].shape[2] if layer == 0 else Dim.const(h * len(dirs))
            for sfx in dirs:
                out += [(f"weight_ih_l{layer}{sfx}", (Dim.const(gates * h), cin), True),
                        (f"weight_hh_l{layer}{sfx}", (Dim.const(gates * h), Dim.const(h)), True),
                        (f"bias_ih_l{layer}{sfx}", (Dim.const(gates * h),), True),
                        (f"bias_hh_l{layer}{sfx}", (Dim.const(gates * h),), True)]
        return out
    return weights


def _rnn_macs(gates: int):
    def macs(a: Attrs, ins: Types, outs: Types) -> Dim:
        b, t, i = ins[0].shape
        h, dirs = a["hidden"], 2 if a["bidirectional"] else 1
        total = Dim.const(0)
        for layer in range(a["layers"]):
            cin = i if layer == 0 else Dim.const(h * dirs)
            total = total + b * t * dirs * gates * h * (cin + h)
        return total
    return macs


def _rnn_params() -> tuple[Param, ...]:
    return (Param("hidden", int_(1), type_name="int"), Param("layers", int_(1), 1, "int"),
            Param("bidirectional", bool_, False, "bool"), Param("dropout", prob, 0.0, "number"),
            Param("state", bool_, False, "bool (also output the final states)"))


register(
    OpDef("lstm", _rnn_params(), _rnn_infer(4, 2),
          "LSTM over a batch-first sequence; inputs (x[, h0, c0]); outputs out[, h_n, c_n] with state=true",
          "(B, T, I) -> (B, T, dirs*hidden)[, (dirs*layers, B, hidden) x2]", "recurrent", inputs=(1, 3),
          outputs=lambda a, n: 3 if a["state"] else 1, weights=_rnn_weights(4), macs=_rnn_macs(4)),
    OpDef("gru", _rnn_params(), _rnn_infer(3, 1),
          "GRU over a batch-first sequence; inputs (x[, h0]); outputs out[, h_n] with state=true",
          "(B, T, I) -> (B, T, dirs*hidden)[, (dirs*layers, B, hidden)]", "recurrent", inputs=(1, 2),
          outputs=lambda a, n: 2 if a["state"] else 1, weights=_rnn_weights(3), macs=_rnn_macs(3)),
)
