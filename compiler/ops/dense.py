"""Dense layers: `linear`, its PyTorch module (nn.Linear) and ONNX form (Gemm, or MatMul + Add)."""
from __future__ import annotations

from ..emit.onnx.context import OnnxContext
from ..emit.torch.forms import _call, _kw, _size, _tidy, _weighted
from ..ir.dims import Dim, numel
from .table import Attrs, OpDef, Param, ShapeError, Types, bool_, concrete, int_, need_float, register


def _linear_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    if x.rank < 1:
        raise ShapeError("expects at least one dimension (..., in_features)")
    need_float(x)
    concrete(x.shape[-1], "the feature (last) dimension")
    return [x.with_shape((*x.shape[:-1], Dim.of(a["out"])))]


def _linear_weights(a: Attrs, ins: Types):
    cin = ins[0].shape[-1]
    w = [("weight", (Dim.const(a["out"]), cin), True)]
    return w + ([("bias", (Dim.const(a["out"]),), True)] if a["bias"] else [])


def _linear_onnx(ctx: OnnxContext) -> list[str]:
    x, w = ctx.x, ctx.weights["weight"]
    bias = [ctx.weights["bias"]] if "bias" in ctx.weights else []
    if ctx.rank() == 2:
        return [ctx.b.one("Gemm", [x, w, *bias], ctx.hint, transB=1)]
    wt = ctx.b.one("Transpose", [w], f"{ctx.hint}/weight_t", perm=[1, 0])
    y = ctx.b.one("MatMul", [x, wt], f"{ctx.hint}/matmul" if bias else ctx.hint)
    return [ctx.b.one("Add", [y, *bias], ctx.hint)] if bias else [y]


register(OpDef(
    "linear", (Param("out", int_(1), type_name="int"), Param("bias", bool_, True, "bool")),
    _linear_infer, "affine map of the last dimension, y = x W^T + b", "(..., in) -> (..., out)", "dense",
    weights=_linear_weights, macs=lambda a, ins, outs: numel(outs[0].shape) * ins[0].shape[-1],
    torch=_weighted("linear", lambda s: _call("nn.Linear", [_size(s, 0, -1), _tidy(s.attrs["out"]),
                                                           _kw(s, "bias", True)])),
    onnx=_linear_onnx))
