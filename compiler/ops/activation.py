"""Element-wise activations and softmax."""
from __future__ import annotations

from ..ir.types import FLOAT_DTYPES, TensorType
from .table import Attrs, OpDef, Param, Types, choice, float_, int_, norm_dim, register, same


def _unary(name: str, doc: str, params: tuple[Param, ...] = (), flops: int = 1) -> OpDef:
    return OpDef(name, params, same, doc, "x -> same", "activation", elementwise_flops=flops)


def _scale_infer(a: Attrs, ins: Types) -> Types:
    """x * factor; an integer tensor scaled by a fraction becomes float, as in PyTorch."""
    x = ins[0]
    if x.dtype not in FLOAT_DTYPES and a["factor"] != int(a["factor"]):
        return [TensorType("f32", x.shape)]
    return [x]


def _softmax_infer(a: Attrs, ins: Types) -> Types:
    norm_dim(a["dim"], ins[0].rank)
    return [ins[0]]


register(
    _unary("relu", "max(x, 0)"),
    _unary("leaky_relu", "x if x > 0 else slope*x", (Param("slope", float_, 0.01, "number"),)),
    _unary("sigmoid", "1 / (1 + exp(-x))", flops=4),
    _unary("tanh", "hyperbolic tangent", flops=5),
    _unary("softplus", "log(1 + exp(beta*x)) / beta", (Param("beta", float_, 1.0, "number"),), flops=4),
    _unary("gelu", "x * Phi(x); `approximate=\"tanh\"` for GPT-2's form",
           (Param("approximate", choice("none", "tanh"), "none", '"none" | "tanh"'),), flops=8),
    _unary("elu", "x if x > 0 else alpha*(exp(x)-1)", (Param("alpha", float_, 1.0, "number"),), flops=4),
    _unary("silu", "x * sigmoid(x)", flops=5),
    _unary("abs", "|x|"),
    _unary("exp", "e^x", flops=4),
    _unary("identity", "x", flops=0),
    OpDef("scale", (Param("factor", float_, type_name="number"),), _scale_infer,
          "x * factor (e.g. sqrt(d_model) after an embedding)", "x -> same", "activation", elementwise_flops=1),
    OpDef("softmax", (Param("dim", int_(), -1, "int"),), _softmax_infer, "softmax along `dim`", "x -> same",
          "activation", elementwise_flops=5),
    OpDef("log_softmax", (Param("dim", int_(), -1, "int"),), _softmax_infer, "log of softmax along `dim`",
          "x -> same", "activation", elementwise_flops=6),
)
