"""Objectives that differentiate with respect to an input: `grad`, and the terms built from it.

`grad` takes (y, x) and gives d(sum y)/dx, shaped like x, itself differentiable (PyTorch's
`create_graph=True`), so that a loss may contain it:
  - WGAN-GP (Gulrajani et al. 2017): the critic's penalty lambda * (||grad_x^ D(x^)||_2 - 1)^2 at
    x^ = eps x + (1 - eps) x~, eps ~ U(0, 1) per example, x real and x~ generated:
    `hat = (image, fake) -> interpolate_random`, then
    `(hat -> critic, hat) -> grad -> norm -> shift(-1.0) -> square -> mean([0]) -> scale(10.0)`;
  - adversarial training (course notes, "Security to Adversarial Attack"): the fast gradient sign
    method x* = x + beta sign(grad_x L(f(x), y)), `(loss, image) -> grad -> sign -> scale(beta)`,
    added to x, clamped to the data range and detached; the objective (Goodfellow et al. 2015)
    alpha L(x, y) + (1 - alpha) L(x*, y).
Beside it: `sign`, `square`, `shift` (x + c), `norm` (the L2 norm of each example, over every dim
but the batch dim 0, (B, ..) -> (B,)) and `interpolate_random` (eps x + (1 - eps) y, one
eps ~ U(0, 1) per example).

PyTorch forms: `grad` is the `input_grad` helper (torch.autograd.grad of y.sum()); x must be a
tensor autograd follows, so the emitter writes `x = track_grad(x)` where x is defined (a data
field or a value computed without gradients becomes a leaf that requires them), see
`differentiated_names`. Under torch.no_grad nothing is recorded: whoever runs such a module for
figures (the training loop's `evaluate`) runs it under torch.enable_grad. ONNX exports the
inference graph: `grad`, `norm` and `interpolate_random` have no ONNX form (NoOnnxForm, a located
E0602); `sign` is Sign, `square` Mul, `shift` Add.
"""
from __future__ import annotations

from typing import Iterator

from ..emit.onnx.context import NoOnnxForm, OnnxContext, scalar
from ..emit.torch.forms import _atom, _call, _join, _multi, _tidy, _unary, _value
from ..ir.types import FLOAT_DTYPES, TensorType
from ..syntax import ast
from .table import Attrs, OpDef, Param, ShapeError, Types, float_, register, shapes_differ

GRAD = "grad"


# --- shape rules -------------------------------------------------------------------------------------

def _float(t: TensorType, what: str, index: int) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"expects a floating-point {what}, got {t}", index)


def _grad_infer(a: Attrs, ins: Types) -> Types:
    y, x = ins
    _float(y, "value to differentiate", 0)
    _float(x, "input to differentiate with respect to", 1)
    return [x]


def _float_same(a: Attrs, ins: Types) -> Types:
    _float(ins[0], "input", 0)
    return [ins[0]]


def _norm_infer(a: Attrs, ins: Types) -> Types:
    (x,) = ins
    _float(x, "input", 0)
    if x.rank < 2:
        raise ShapeError(f"takes the norm of each example over its dims after the batch dim 0; {x} has none", 0)
    return [TensorType(x.dtype, (x.shape[0],))]


def _interpolate_infer(a: Attrs, ins: Types) -> Types:
    real, fake = ins
    _float(real, "first input", 0)
    _float(fake, "second input", 1)
    if real.rank == 0:
        raise ShapeError("mixes examples along the batch dim 0, but the input is a scalar", 0)
    if shapes_differ(real.shape, fake.shape) or real.dtype != fake.dtype:
        raise ShapeError(f"mixes two tensors of one shape and dtype, got {real} and {fake}", 1)
    return [real]


# --- PyTorch forms -------------------------------------------------------------------------------------

def _shift_torch(s, x: str) -> str:
    """`x + 0.5`; a negative literal as `x - 1.0`."""
    by = _value(s.attrs["by"])
    if isinstance(by, (int, float)) and not isinstance(by, bool) and by < 0:
        return _join("-", [x, repr(-by)])
    return _join("+", [x, _tidy(s.attrs["by"])])


def _norm_torch(s, x: str) -> str:
    return f"torch.linalg.vector_norm({_atom(x)}.flatten(1), dim=1)"


# --- ONNX forms ----------------------------------------------------------------------------------------

def _grad_onnx(ctx: OnnxContext) -> list[str]:
    raise NoOnnxForm("it differentiates the graph, a training objective's term; the ONNX export is the inference "
                     "graph")


def _norm_onnx(ctx: OnnxContext) -> list[str]:
    raise NoOnnxForm("it is a training objective's term (a gradient penalty); the ONNX export is the inference graph")


def _interpolate_onnx(ctx: OnnxContext) -> list[str]:
    raise NoOnnxForm("it samples random numbers: the ONNX export is a deterministic inference graph")


def _sign_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Sign", [ctx.x], ctx.hint)]


def _square_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Mul", [ctx.x, ctx.x], ctx.hint)]


def _shift_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Add", [ctx.x, scalar(ctx, ctx.attrs["by"], "by")], ctx.hint)]


# --- what the PyTorch emitter must track ------------------------------------------------------------------

def differentiated_names(body: tuple[ast.Stmt, ...]) -> set[str]:
    """The names that some `(y, x) -> grad` of a def's body differentiates with respect to (its `x`):
    the emitter makes autograd follow them from where they are defined (`x = track_grad(x)`)."""
    return {c.sources[1].id for c in _chains(body)
            if c.stages and c.stages[0].callee == (GRAD,) and len(c.sources) == 2}


def _chains(body: tuple[ast.Stmt, ...]) -> Iterator[ast.Chain]:
    for s in body:
        if isinstance(s, (ast.Bind, ast.Output)) and s.chain is not None:
            yield s.chain
        elif isinstance(s, ast.For):
            yield from _chains(s.body)
        elif isinstance(s, ast.If):
            yield from _chains(s.then)
            yield from _chains(s.orelse)


# --- the table -----------------------------------------------------------------------------------------

register(
    OpDef(GRAD, (), _grad_infer,
          "d(sum y)/dx, shaped like x and itself differentiable, so that a loss may contain it (a WGAN-GP "
          "gradient penalty, FGSM adversarial examples); x may be a data field",
          "(y, x) -> shape of x", "loss", inputs=(2, 2), input_flops=2,
          torch=_multi(lambda s, xs: _call("input_grad", list(xs)), ("input_grad", "track_grad")),
          onnx=_grad_onnx),
    OpDef("sign", (), _float_same, "sign(x): -1, 0 or 1 (the fast gradient sign method)", "x -> same", "loss",
          elementwise_flops=1, torch=_unary(lambda s: "Sign()", lambda s, x: f"torch.sign({x})", ("Sign",)),
          onnx=_sign_onnx),
    OpDef("square", (), _float_same, "x * x", "x -> same", "loss", elementwise_flops=1,
          torch=_unary(lambda s: "Square()", lambda s, x: f"torch.square({x})", ("Square",)), onnx=_square_onnx),
    OpDef("shift", (Param("by", float_, type_name="number"),), _float_same, "x + by (a constant)", "x -> same",
          "loss", elementwise_flops=1,
          torch=_unary(lambda s: _call("Shift", [_tidy(s.attrs["by"])]),
                       _shift_torch, ("Shift",)),
          onnx=_shift_onnx),
    OpDef("norm", (), _norm_infer,
          "the L2 norm of each example, sqrt(sum of squares over every dim but the batch dim 0)",
          "(B, ..) -> (B,)", "loss", input_flops=2,
          torch=_unary(lambda s: "ExampleNorm()", _norm_torch, ("ExampleNorm",)), onnx=_norm_onnx),
    OpDef("interpolate_random", (), _interpolate_infer,
          "eps * x + (1 - eps) * y with one eps ~ U(0, 1) per example (WGAN-GP's points between real and "
          "generated samples)",
          "(B, ..), (B, ..) -> (B, ..)", "loss", inputs=(2, 2), elementwise_flops=3,
          torch=_multi(lambda s, xs: _call("interpolate_random", list(xs)), ("interpolate_random",)),
          onnx=_interpolate_onnx),
)
