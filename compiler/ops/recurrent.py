"""Recurrent layers: LSTM and GRU over batch-first sequences, optionally returning final states.

PyTorch forms: the LSTM and GRU helpers of runtime/layers/ (dlc.runtime.layers) (nn.LSTM / nn.GRU with
batch_first and a flat call signature). ONNX forms: one ONNX LSTM/GRU node per layer
(time-major, layout=0, with Transposes around them: ONNX Runtime's CPU kernels do not implement
layout=1), gates reordered from PyTorch's (i, f, g, o) / (r, z, n) to ONNX's (i, o, f, c) /
(z, r, h), GRU with linear_before_reset=1, directions concatenated between layers, states in
PyTorch's (layers*dirs, B, H) layout.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..emit.onnx.context import Converter, NoOnnxForm, OnnxContext
from ..emit.torch.forms import (OpSource, _call, _kw, _size, _tidy, _weighted)
from ..ir.dims import Dim, shape_str
from .table import (Attrs, OpDef, Param, ShapeError, Types, bool_, concrete, int_, need_float, need_rank,
                    prob, register, shapes_differ)

if TYPE_CHECKING:
    import numpy as np


def _rnn_infer(gates: int, n_states: int):
    def infer(a: Attrs, ins: Types) -> Types:
        x = ins[0]
        need_rank(x, (3,), "(B, T, I) (batch first)")
        need_float(x)
        concrete(x.shape[2], "the input feature size")
        if gates == 4 and len(ins) == 2:
            raise ShapeError("an LSTM takes (x) or (x, h0, c0): the cell state c0 is missing", 1)
        dirs = 2 if a["bidirectional"] else 1
        h = Dim.of(a["hidden"])
        state = x.with_shape((Dim.of(dirs * a["layers"]), x.shape[0], h))
        for i, s in enumerate(ins[1:], start=1):
            if shapes_differ(s.shape, state.shape):
                raise ShapeError(f"initial state {i} has shape {shape_str(s.shape)}, expected {shape_str(state.shape)}", i)
        out = x.with_shape((x.shape[0], x.shape[1], Dim.of(dirs * a["hidden"])))
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


# --- PyTorch forms ------------------------------------------------------------------------------

def _rnn_module(cls: str) -> Callable[[OpSource], str]:
    def module(src: OpSource) -> str:
        return _call(cls, [_size(src, 0, -1), _tidy(src.attrs["hidden"]), _kw(src, "layers", 1, "num_layers"),
                           _kw(src, "dropout", 0.0), _kw(src, "bidirectional", False),
                           _kw(src, "state", False, "return_state")])
    return module


# --- ONNX forms ---------------------------------------------------------------------------------

_GATES = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}  # ONNX's gate order as PyTorch gate indices


def _reorder(array: np.ndarray, order: list[int]) -> np.ndarray:
    import numpy as np  # here, not at the top: the op table loads without numpy

    return np.concatenate([array.reshape(len(order), -1, *array.shape[1:])[g] for g in order])


def _rnn_onnx(op: str) -> Converter:
    def convert(ctx: OnnxContext) -> list[str]:
        import numpy as np  # the gate-reordered weights are computed here: the op table loads without numpy

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
            for final, out in zip(finals, outs[1:], strict=True):
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


register(
    OpDef("lstm", _rnn_params(), _rnn_infer(4, 2),
          "LSTM over a batch-first sequence; inputs (x[, h0, c0]); outputs out[, h_n, c_n] with state=true",
          "(B, T, I) -> (B, T, dirs*hidden)[, (dirs*layers, B, hidden) x2]", "recurrent", inputs=(1, 3),
          outputs=lambda a, n: 3 if a["state"] else 1, weights=_rnn_weights(4), macs=_rnn_macs(4),
          torch=_weighted("lstm", _rnn_module("LSTM"), ("LSTM",)), onnx=_rnn_onnx("LSTM")),
    OpDef("gru", _rnn_params(), _rnn_infer(3, 1),
          "GRU over a batch-first sequence; inputs (x[, h0]); outputs out[, h_n] with state=true",
          "(B, T, I) -> (B, T, dirs*hidden)[, (dirs*layers, B, hidden)]", "recurrent", inputs=(1, 2),
          outputs=lambda a, n: 2 if a["state"] else 1, weights=_rnn_weights(3), macs=_rnn_macs(3),
          torch=_weighted("gru", _rnn_module("GRU"), ("GRU",)), onnx=_rnn_onnx("GRU")),
)
