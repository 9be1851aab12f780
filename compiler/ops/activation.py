"""Element-wise activations and softmax: shape rules, costs, and their PyTorch and ONNX forms.

The ONNX forms reproduce PyTorch's CPU kernels where ONNX's own op differs (softplus's threshold,
GELU's erf and tanh forms); the others are the ONNX op of the same name.
"""
from __future__ import annotations

import math

from ..emit.onnx.context import Converter, NoOnnxForm, OnnxContext, identity, scalar, unary
from ..emit.torch.forms import OpSource, TorchEntry, _call, _join, _kw, _pair, _tidy, _unary
from ..ir.types import FLOAT_DTYPES, TensorType
from .table import (Attrs, OpDef, Param, ShapeError, Types, choice, float_, int_, need_float, norm_dim, optional,
                    register, same)


def _activation(name: str, doc: str, torch: TorchEntry, onnx: Converter, params: tuple[Param, ...] = (),
                flops: int = 1) -> OpDef:
    """An element-wise op: `x -> same`, `flops` FLOPs per element."""
    return OpDef(name, params, same, doc, "x -> same", "activation", elementwise_flops=flops, torch=torch, onnx=onnx)


# --- ONNX forms that are more than one node of the same name ---------------------------------------

def _leaky_relu_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("LeakyRelu", [ctx.x], ctx.hint, alpha=float(ctx.attrs["slope"]))]


def _elu_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Elu", [ctx.x], ctx.hint, alpha=float(ctx.attrs["alpha"]))]


def _softplus_onnx(ctx: OnnxContext) -> list[str]:
    """F.softplus(x, beta, threshold=20): x where beta*x > 20, else log1p(exp(beta*x)) / beta."""
    beta, x = float(ctx.attrs["beta"]), ctx.x
    bx = x if beta == 1.0 else ctx.b.one("Mul", [x, scalar(ctx, beta, "beta")], f"{ctx.hint}/beta_x")
    soft = ctx.b.one("Softplus", [bx], f"{ctx.hint}/soft")
    if beta != 1.0:
        soft = ctx.b.one("Div", [soft, scalar(ctx, beta, "beta")], f"{ctx.hint}/soft_scaled")
    linear = ctx.b.one("Greater", [bx, scalar(ctx, 20.0, "softplus_threshold")], f"{ctx.hint}/linear")
    return [ctx.b.one("Where", [linear, x, soft], ctx.hint)]


def _gelu_onnx(ctx: OnnxContext) -> list[str]:
    """PyTorch's CPU kernels: x * 0.5 * (1 + erf(x * M_SQRT1_2)), or for approximate="tanh"
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))."""
    x, b, h = ctx.x, ctx.b, ctx.hint
    half, one = scalar(ctx, 0.5, "half"), scalar(ctx, 1.0, "one")
    if ctx.attrs["approximate"] == "none":
        inner = b.one("Erf", [b.one("Mul", [x, scalar(ctx, math.sqrt(0.5), "sqrt_half")], f"{h}/scaled")],
                      f"{h}/erf")
    else:
        cube = b.one("Mul", [b.one("Mul", [x, x], f"{h}/square"), x], f"{h}/cube")
        arg = b.one("Add", [x, b.one("Mul", [scalar(ctx, 0.044715, "gelu_kappa"), cube], f"{h}/kappa_cube")],
                    f"{h}/poly")
        arg = b.one("Mul", [scalar(ctx, math.sqrt(2.0 / math.pi), "gelu_beta"), arg], f"{h}/inner")
        inner = b.one("Tanh", [arg], f"{h}/tanh")
    return [b.one("Mul", [b.one("Mul", [x, half], f"{h}/half_x"), b.one("Add", [one, inner], f"{h}/one_plus")], h)]


def _relu6_onnx(ctx: OnnxContext) -> list[str]:
    """F.relu6 is hardtanh(x, 0, 6): a Clip between constants in x's dtype."""
    return [ctx.b.one("Clip", [ctx.x, scalar(ctx, 0.0, "relu6_min"), scalar(ctx, 6.0, "relu6_max")], ctx.hint)]


def _hardtanh_infer(a: Attrs, ins: Types) -> Types:
    """nn.Hardtanh asserts max > min; integer tensors would clip to truncated bounds, so floats only."""
    need_float(ins[0])
    if not a["min"] < a["max"]:
        raise ShapeError(f"needs min < max, got min={a['min']}, max={a['max']}")
    return [ins[0]]


def _hardtanh_torch(src: OpSource) -> list[str | None]:
    return [_kw(src, "min", -1.0, "min_val"), _kw(src, "max", 1.0, "max_val")]


def _hardtanh_onnx(ctx: OnnxContext) -> list[str]:
    low, high = scalar(ctx, ctx.attrs["min"], "hardtanh_min"), scalar(ctx, ctx.attrs["max"], "hardtanh_max")
    return [ctx.b.one("Clip", [ctx.x, low, high], ctx.hint)]


def _clamp_infer(a: Attrs, ins: Types) -> Types:
    """torch.clamp needs a bound; an integer tensor with float bounds becomes float, so floats only."""
    need_float(ins[0])
    low, high = a["min"], a["max"]
    if low is None and high is None:
        raise ShapeError("needs `min`, `max` or both")
    if low is not None and high is not None and low > high:
        raise ShapeError(f"needs min <= max, got min={low}, max={high}")
    return [ins[0]]


def _clamp_torch(src: OpSource) -> list[str | None]:
    """The bounds that are given and not `None` (torch.clamp's default)."""
    return [_kw(src, name, None) for name in ("min", "max") if src.attrs[name].strip() != "None"]


def _clamp_onnx(ctx: OnnxContext) -> list[str]:
    """Clip with an absent bound as an empty (optional) input."""
    bounds = [scalar(ctx, ctx.attrs[name], f"clamp_{name}") if ctx.attrs[name] is not None else ""
              for name in ("min", "max")]
    while bounds and not bounds[-1]:
        bounds.pop()
    return [ctx.b.one("Clip", [ctx.x, *bounds], ctx.hint)]


def _float_only(a: Attrs, ins: Types) -> Types:
    """PyTorch's CPU kernel has no integer form."""
    need_float(ins[0])
    return [ins[0]]


def _silu_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Mul", [ctx.x, ctx.b.one("Sigmoid", [ctx.x], f"{ctx.hint}/sigmoid")], ctx.hint)]


register(
    _activation("relu", "max(x, 0)", _pair("nn.ReLU", "F.relu"), unary("Relu")),
    # two comparisons per element, as relu's one (max with 0) is counted as one FLOP
    _activation("relu6", "min(max(x, 0), 6) (MobileNet)", _pair("nn.ReLU6", "F.relu6"), _relu6_onnx, flops=2),
    # two comparisons per element, as relu6
    OpDef("hardtanh", (Param("min", float_, -1.0, "number"), Param("max", float_, 1.0, "number")), _hardtanh_infer,
          "x clipped to [min, max]", "x -> same", "activation", elementwise_flops=2,
          torch=_pair("nn.Hardtanh", "F.hardtanh", _hardtanh_torch), onnx=_hardtanh_onnx),
    # one comparison per bound; an op has one count per element, so two, as with both bounds
    OpDef("clamp", (Param("min", optional(float_), None, "number | none"),
                    Param("max", optional(float_), None, "number | none")), _clamp_infer,
          "x clipped to [min, max]; either bound may be none (torch.clamp)", "x -> same", "activation",
          elementwise_flops=2, torch=_pair("Clamp", "torch.clamp", _clamp_torch, helpers=("Clamp",)),
          onnx=_clamp_onnx),
    _activation("leaky_relu", "x if x > 0 else slope*x",
                _pair("nn.LeakyReLU", "F.leaky_relu", lambda s: [_kw(s, "slope", 0.01, "")]), _leaky_relu_onnx,
                (Param("slope", float_, 0.01, "number"),)),
    _activation("sigmoid", "1 / (1 + exp(-x))", _pair("nn.Sigmoid", "torch.sigmoid"), unary("Sigmoid"), flops=4),
    _activation("tanh", "hyperbolic tangent", _pair("nn.Tanh", "torch.tanh"), unary("Tanh"), flops=5),
    _activation("softplus", "log(1 + exp(beta*x)) / beta",
                _pair("nn.Softplus", "F.softplus", lambda s: [_kw(s, "beta", 1.0)]), _softplus_onnx,
                (Param("beta", float_, 1.0, "number"),), flops=4),
    _activation("gelu", "x * Phi(x); `approximate=\"tanh\"` for GPT-2's form",
                _pair("nn.GELU", "F.gelu", lambda s: [_kw(s, "approximate", "none")]), _gelu_onnx,
                (Param("approximate", choice("none", "tanh"), "none", '"none" | "tanh"'),), flops=8),
    _activation("elu", "x if x > 0 else alpha*(exp(x)-1)",
                _pair("nn.ELU", "F.elu", lambda s: [_kw(s, "alpha", 1.0)]), _elu_onnx,
                (Param("alpha", float_, 1.0, "number"),), flops=4),
    _activation("silu", "x * sigmoid(x)", _pair("nn.SiLU", "F.silu"), _silu_onnx, flops=5),
    # five per element: add 3, clamp to [0, 6] (two comparisons), multiply by x, divide by 6;
    # ONNX's HardSwish (opset 14) is x * max(0, min(1, x/6 + 1/2)), the same function
    _activation("hardswish", "x * relu6(x + 3) / 6 (MobileNetV3)", _pair("nn.Hardswish", "F.hardswish"),
                unary("HardSwish"), flops=5),
    # four per element: add 3, clamp to [0, 6] (two comparisons), divide by 6; ONNX's HardSigmoid
    # is max(0, min(1, alpha*x + beta)), PyTorch's function with alpha = 1/6, beta = 1/2
    OpDef("hardsigmoid", (), _float_only, "relu6(x + 3) / 6 (MobileNetV3)", "x -> same", "activation",
          elementwise_flops=4, torch=_pair("nn.Hardsigmoid", "F.hardsigmoid"),
          onnx=unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5)),
    # ten per element: softplus (four, as `softplus`), tanh (five, as `tanh`), multiply by x;
    # ONNX's Mish (opset 18) is x * tanh(softplus(x)), PyTorch's function
    OpDef("mish", (), _float_only, "x * tanh(softplus(x)) (YOLOv4)", "x -> same", "activation",
          elementwise_flops=10, torch=_pair("nn.Mish", "F.mish"), onnx=unary("Mish")),
    _activation("abs", "|x|", _pair("Abs", "torch.abs", helpers=("Abs",)), unary("Abs")),
    _activation("exp", "e^x", _pair("Exp", "torch.exp", helpers=("Exp",)), unary("Exp"), flops=4),
    # the natural log, -inf at 0 and NaN below, as torch.log and ONNX's Log (a logit log p - log(1 - p))
    OpDef("log", (), _float_only, "ln x (natural log; -inf at 0, NaN below)", "x -> same", "activation",
          elementwise_flops=4, torch=_pair("Log", "torch.log", helpers=("Log",)), onnx=unary("Log")),
    _activation("identity", "x", _unary(lambda s: "nn.Identity()", lambda s, x: x), identity, flops=0),
)


# --- scale ----------------------------------------------------------------------------------------

def _scale_infer(a: Attrs, ins: Types) -> Types:
    """x * factor; an integer tensor scaled by a fraction becomes float, as in PyTorch."""
    x = ins[0]
    if x.dtype not in FLOAT_DTYPES and a["factor"] != int(a["factor"]):
        return [TensorType("f32", x.shape)]
    return [x]


def _scale_onnx(ctx: OnnxContext) -> list[str]:
    factor = ctx.attrs["factor"]
    if ctx.in_types[0].dtype not in FLOAT_DTYPES and factor != int(factor):
        raise NoOnnxForm(f"scaling a {ctx.in_types[0].dtype} tensor by {factor} gives a float tensor in PyTorch")
    return [ctx.b.one("Mul", [ctx.x, scalar(ctx, factor, "factor")], ctx.hint)]


register(OpDef(
    "scale", (Param("factor", float_, type_name="number"),), _scale_infer,
    "x * factor (e.g. sqrt(d_model) after an embedding)", "x -> same", "activation", elementwise_flops=1,
    torch=_unary(lambda s: _call("Scale", [_tidy(s.attrs["factor"])]),
                 lambda s, x: _join("*", [x, _tidy(s.attrs["factor"])]), helpers=("Scale",)),
    onnx=_scale_onnx))


# --- softmax ----------------------------------------------------------------------------------------

def _softmax_infer(a: Attrs, ins: Types) -> Types:
    norm_dim(a["dim"], ins[0].rank)
    return [ins[0]]


def _dim_always(src: OpSource) -> list[str | None]:
    return [f"dim={_tidy(src.attrs['dim'])}"]


def _softmax_onnx(op_type: str) -> Converter:
    def convert(ctx: OnnxContext) -> list[str]:
        return [ctx.b.one(op_type, [ctx.x], ctx.hint, axis=ctx.axis(ctx.attrs["dim"]))]
    return convert


register(
    OpDef("softmax", (Param("dim", int_(), -1, "int"),), _softmax_infer, "softmax along `dim`", "x -> same",
          "activation", elementwise_flops=5,
          torch=_pair("nn.Softmax", "F.softmax", _dim_always), onnx=_softmax_onnx("Softmax")),
    OpDef("log_softmax", (Param("dim", int_(), -1, "int"),), _softmax_infer, "log of softmax along `dim`",
          "x -> same", "activation", elementwise_flops=6,
          torch=_pair("nn.LogSoftmax", "F.log_softmax", _dim_always), onnx=_softmax_onnx("LogSoftmax")),
)
