"""ONNX converters for embeddings, positional encodings, attention and recurrent layers.

Each converter reproduces the generated PyTorch module (dlc.runtime.layers, eval mode):
  - embedding: Gather rows of the table (padding_idx only matters for training).
  - pos_embedding, sinusoidal_pe: x + table[:T]; T is read from x's shape at run time when it
    is symbolic, so one model serves every length up to max_len. The sinusoidal table is a
    constant built in float32 the way `sinusoidal_table` builds it (max_len rows when T is
    symbolic, T rows when it is constant).
  - mha, attention: scaled dot-product attention as F.scaled_dot_product_attention computes it
    (scores scaled after q k^T, causal mask aligned top-left: query i sees keys 0..i, masked
    scores -inf, softmax over keys); dropout is the identity.
  - additive_attention: Bahdanau's scores v^T tanh(W q + U m), softmax over memory steps.
  - lstm, gru: one ONNX LSTM/GRU node per layer (time-major, layout=0, with Transposes around
    them: ONNX Runtime's CPU kernels do not implement layout=1), gates reordered from PyTorch's
    (i, f, g, o) / (r, z, n) to ONNX's (i, o, f, c) / (z, r, h), GRU with linear_before_reset=1,
    directions concatenated between layers, states in PyTorch's (layers*dirs, B, H) layout.
  - reparameterize: the inference form, z = mu (Identity); logvar is unused.
"""
from __future__ import annotations

import math

import numpy as np
from onnx import helper

from .builder import ONNX_DTYPES, Converter, NoOnnxForm, OnnxContext

_NUMPY = {"f32": np.float32, "f64": np.float64, "f16": np.float16}


def _scalar(ctx: OnnxContext, value: float, dtype: str, hint: str) -> str:
    """A 0-d constant of a float dtype (bf16, which numpy lacks, through a Cast)."""
    if dtype in _NUMPY:
        return ctx.b.const(np.array(value, dtype=_NUMPY[dtype]), hint)
    return ctx.b.one("Cast", [ctx.b.const(np.array(value, dtype=np.float32), hint)], f"{ctx.hint}/{hint}",
                     to=ONNX_DTYPES[dtype])


# --- embeddings and positions ----------------------------------------------------------------

def _embedding(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Gather", [ctx.weights["weight"], ctx.inputs[0]], ctx.hint, axis=0)]


def _first_rows(ctx: OnnxContext, table: str) -> str:
    """table[:T] for T = x.shape[1]: a constant Slice when T is constant, else read from x's shape."""
    t = ctx.static(0, 1)
    if t is not None:
        end = ctx.b.ints([t], "end")
    else:
        end = ctx.b.one("Shape", [ctx.inputs[0]], f"{ctx.hint}/T", start=1, end=2)
    return ctx.b.one("Slice", [table, ctx.b.ints([0], "start"), end, ctx.b.ints([0], "axes")], f"{ctx.hint}/rows")


def _pos_embedding(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Add", [ctx.inputs[0], _first_rows(ctx, ctx.weights["weight"])], ctx.hint)]


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
    """`sinusoidal_table` of the PyTorch helpers in numpy: the same float32 steps (positions times
    frequencies rounded to float32, then sin on even and cos on odd features). The frequencies are
    exp correctly rounded to float32; PyTorch's vectorized exp differs from that by one ulp in a
    few of them, which moves an encoding at position p by at most about p * 6e-8."""
    position = np.arange(length, dtype=np.float32)[:, None]
    exponent = np.arange(0, dim, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / dim)
    freq = np.exp(exponent.astype(np.float64)).astype(np.float32)
    angle = (position * freq).astype(np.float64)  # the float32 product, as PyTorch rounds it
    table = np.zeros((length, dim), dtype=np.float32)
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle)
    return table


def _sinusoidal_pe(ctx: OnnxContext) -> list[str]:
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


# --- attention --------------------------------------------------------------------------------

def _sdpa(ctx: OnnxContext, q: str, k: str, v: str, rank: int, scale: float | str | None, causal: bool,
          lengths: tuple[int | None, int | None], dtype: str) -> str:
    """softmax(q k^T * scale [masked]) v over the last two dims, as F.scaled_dot_product_attention.

    `scale` is a number, a tensor name, or None for no scaling; `lengths` are (Tq, Tk) when constant."""
    b, hint = ctx.b, ctx.hint
    perm = [*range(rank - 2), rank - 1, rank - 2]
    scores = b.one("MatMul", [q, b.one("Transpose", [k], f"{hint}/k_t", perm=perm)], f"{hint}/scores")
    if isinstance(scale, str):
        scores = b.one("Mul", [scores, scale], f"{hint}/scaled")
    elif scale is not None:
        scores = b.one("Mul", [scores, _scalar(ctx, scale, dtype, "scale")], f"{hint}/scaled")
    if causal:
        tq, tk = lengths
        if tq is not None and tk is not None:
            mask = b.const(np.tril(np.ones((tq, tk), dtype=bool)), "causal_mask")
        else:  # ones of shape (Tq, Tk) read from the scores, lower triangle kept (top-left aligned)
            size = b.one("Shape", [scores], f"{hint}/mask_shape", start=-2)
            ones = b.one("ConstantOfShape", [size], f"{hint}/ones",
                         value=helper.make_tensor("one", ONNX_DTYPES["bool"], [1], [True]))
            mask = b.one("Trilu", [ones], f"{hint}/causal_mask", upper=0)
        scores = b.one("Where", [mask, scores, _scalar(ctx, -np.inf, dtype, "neg_inf")], f"{hint}/masked")
    weights = b.one("Softmax", [scores], f"{hint}/weights", axis=-1)
    return b.one("MatMul", [weights, v], f"{hint}/context")


def _attention(ctx: OnnxContext) -> list[str]:
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


def _project(ctx: OnnxContext, x: str, name: str, out: str | None = None) -> str:
    """nn.Linear `name` applied to x: x W^T (+ b); the result is named after `out` when given."""
    w = ctx.b.one("Transpose", [ctx.weights[f"{name}.weight"]], f"{ctx.hint}/{name}/weight_t", perm=[1, 0])
    biased = f"{name}.bias" in ctx.weights
    y = ctx.b.one("MatMul", [x, w], f"{ctx.hint}/{name}" if biased or out is None else out)
    if biased:
        y = ctx.b.one("Add", [y, ctx.weights[f"{name}.bias"]], out or f"{ctx.hint}/{name}")
    return y


def _mha(ctx: OnnxContext) -> list[str]:
    n = len(ctx.inputs)
    sources = [0, 0, 0] if n == 1 else [0, 1, 1] if n == 2 else [0, 1, 2]  # input index of q, k, v
    e = ctx.static(0, 2)
    heads = ctx.attrs["heads"]
    head_dim = e // heads
    split = ctx.b.ints([0, 0, heads, head_dim])  # (B, T, E) -> (B, T, heads, E/heads)
    q, k, v = (ctx.b.one("Transpose", [ctx.b.one("Reshape", [_project(ctx, ctx.inputs[i], name), split],
                                                 f"{ctx.hint}/{name}/heads")],
                         f"{ctx.hint}/{name}/heads_first", perm=[0, 2, 1, 3])  # (B, heads, T, E/heads)
               for i, name in zip(sources, ("q_proj", "k_proj", "v_proj")))
    lengths = (ctx.static(0, 1), ctx.static(sources[1], 1))
    out = _sdpa(ctx, q, k, v, 4, 1.0 / math.sqrt(head_dim), ctx.attrs["causal"], lengths, ctx.in_types[0].dtype)
    out = ctx.b.one("Transpose", [out], f"{ctx.hint}/heads_last", perm=[0, 2, 1, 3])
    out = ctx.b.one("Reshape", [out, ctx.b.ints([0, 0, e])], f"{ctx.hint}/merge_heads")
    return [_project(ctx, out, "out_proj", ctx.hint)]


def _additive_attention(ctx: OnnxContext) -> list[str]:
    b, hint = ctx.b, ctx.hint
    q, memory = ctx.inputs
    wq = b.one("Unsqueeze", [_project(ctx, q, "query"), b.ints([2], "axes")], f"{hint}/query_steps")  # (B, Tq, 1, U)
    wk = b.one("Unsqueeze", [_project(ctx, memory, "key"), b.ints([1], "axes")], f"{hint}/key_steps")  # (B, 1, Tk, U)
    hidden = b.one("Tanh", [b.one("Add", [wq, wk], f"{hint}/sum")], f"{hint}/tanh")
    scores = b.one("Squeeze", [_project(ctx, hidden, "score"), b.ints([-1], "axes")], f"{hint}/scores")
    weights = b.one("Softmax", [scores], f"{hint}/weights", axis=-1)
    return [b.one("MatMul", [weights, memory], hint)]


# --- recurrent layers ------------------------------------------------------------------------

_GATES = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}  # ONNX's gate order as PyTorch gate indices


def _reorder(array: np.ndarray, order: list[int]) -> np.ndarray:
    return np.concatenate([array.reshape(len(order), -1, *array.shape[1:])[g] for g in order])


def _rnn(op: str):
    def convert(ctx: OnnxContext) -> list[str]:
        b, hint, a = ctx.b, ctx.hint, ctx.attrs
        if ctx.in_types[0].dtype != "f32":
            raise NoOnnxForm(f"the {op} weights are f32 and its input is {ctx.in_types[0].dtype}")
        hidden, layers = a["hidden"], a["layers"]
        sfxs = ("", "_reverse") if a["bidirectional"] else ("",)
        dirs, order = len(sfxs), _GATES[op]
        states = list(ctx.inputs[1:])  # h0[, c0]: (layers*dirs, B, H)
        x = b.one("Transpose", [ctx.inputs[0]], f"{hint}/time_major", perm=[1, 0, 2])  # (T, B, I)
        finals: list[list[str]] = [[] for _ in range(2 if op == "LSTM" else 1)]
        y = ""
        for layer in range(layers):
            def stacked(kind: str) -> np.ndarray:
                return np.stack([_reorder(ctx.arrays[f"{kind}_l{layer}{s}"], order) for s in sfxs])
            w = ctx.transformed_weight(f"weight_ih_l{layer}", stacked("weight_ih"), ".onnx_W")
            r = ctx.transformed_weight(f"weight_hh_l{layer}", stacked("weight_hh"), ".onnx_R")
            bias = ctx.transformed_weight(f"bias_ih_l{layer}", np.concatenate(
                [stacked("bias_ih"), stacked("bias_hh")], axis=1), ".onnx_B")
            inputs = [x, w, r, bias]
            if states:
                inputs.append("")  # sequence_lens: every sequence is full length
                for s in states:
                    inputs.append(s if layers == 1 else b.one("Slice", [
                        s, b.ints([layer * dirs], "start"), b.ints([(layer + 1) * dirs], "end"), b.ints([0], "axes")],
                        f"{hint}/l{layer}/initial"))
            outs = b.node(op, inputs, f"{hint}/l{layer}", n_out=1 + len(finals), hidden_size=hidden,
                          direction="bidirectional" if dirs == 2 else "forward",
                          linear_before_reset=1 if op == "GRU" else None)
            y = outs[0]  # (T, dirs, B, H)
            for final, out in zip(finals, outs[1:]):
                final.append(out)  # (dirs, B, H)
            if layer + 1 < layers:  # the next layer's input: (T, B, dirs*H)
                x = b.one("Reshape", [b.one("Transpose", [y], f"{hint}/l{layer}/out", perm=[0, 2, 1, 3]),
                                      b.ints([0, 0, dirs * hidden])], f"{hint}/l{layer}/out")
        y = b.one("Transpose", [y], f"{hint}/batch_major", perm=[2, 0, 1, 3])  # (B, T, dirs, H)
        result = [b.one("Reshape", [y, b.ints([0, 0, dirs * hidden])], hint)]
        if a["state"]:
            for final, name in zip(finals, ("h_n", "c_n")):
                result.append(final[0] if layers == 1 else b.one("Concat", final, f"{hint}/{name}", axis=0))
        return result
    return convert


# --- generative -------------------------------------------------------------------------------

def _reparameterize(ctx: OnnxContext) -> list[str]:
    """Inference form: z = mu. The sampling noise is a training device; the exported model is
    deterministic, as the PyTorch module is in eval mode."""
    return [ctx.b.one("Identity", [ctx.inputs[0]], ctx.hint)]


CONVERTERS: dict[str, Converter] = {
    "embedding": _embedding,
    "pos_embedding": _pos_embedding,
    "sinusoidal_pe": _sinusoidal_pe,
    "mha": _mha,
    "attention": _attention,
    "additive_attention": _additive_attention,
    "lstm": _rnn("LSTM"),
    "gru": _rnn("GRU"),
    "reparameterize": _reparameterize,
}
