"""Training objectives and metrics: losses, accuracy, and the ops their targets and terms need.

A training definition computes its objective with ordinary chains, so a loss is an op: it takes
(prediction, target) and gives a scalar `()` in the prediction's dtype. `reduce` says how:
  - "mean": the mean over every element (PyTorch's default reduction);
  - "sum": the sum over each example (every dim but the batch dim 0), then the mean over the
    batch: nats per example, as a VAE's ELBO or a PixelCNN's likelihood count them.
Beside the losses: `accuracy` (a metric), `bits` (nats -> bits), `detach` (stops gradients, for
GAN objectives) and `to_levels` (intensities in [0, 1] -> class indices, PixelCNN's targets).

PyTorch forms are torch.nn.functional's losses (`F.cross_entropy(logits, label)`), "sum" as
`reduction="sum"` divided by the batch size. ONNX exports the inference graph, so the losses and
accuracy have no ONNX form (NoOnnxForm); `detach` is Identity, `bits` a Div, and `to_levels`
Mul, Floor, Clip and Cast, which compute what the PyTorch form does.
"""
from __future__ import annotations

import math

from ..emit.onnx.context import ONNX_DTYPES, NoOnnxForm, OnnxContext, identity, scalar
from ..emit.torch.forms import (OpSource, TorchEntry, _atom, _call, _const, _join, _kw, _multi, _simplify, _tidy,
                                _unary, _value)
from ..ir.dims import Shape, shape_str
from ..ir.types import FLOAT_DTYPES, TensorType
from .table import (Attrs, OpDef, Param, ShapeError, Types, choice, differ, int_, norm_dim, optional, prob,
                    register, same, shapes_differ)


def _reduce(default: str) -> Param:
    return Param("reduce", choice("mean", "sum"), default, '"mean" | "sum"')


def _ignore() -> Param:
    """ignore_index: a target class index (padding) left out of a loss or accuracy; none by default."""
    return Param("ignore", optional(int_()), None, "int | none")


# --- shape rules -------------------------------------------------------------------------------------

def _scalar(like: TensorType) -> Types:
    return [TensorType(like.dtype, ())]


def _need_float(t: TensorType, what: str, index: int) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"expects floating-point {what}, got {t}", index)


def _need_batch(a: Attrs, t: TensorType) -> None:
    """reduce="sum" averages over the batch dim 0, which a scalar has not."""
    if a["reduce"] == "sum" and t.rank == 0:
        raise ShapeError(f'reduce="sum" averages over the batch dim 0, but the input {t} is a scalar', 0)


def _same_shape(first: TensorType, second: TensorType, names: tuple[str, str]) -> None:
    """Two float inputs of one dtype and exactly one shape (no broadcasting)."""
    _need_float(first, names[0], 0)
    _need_float(second, names[1], 1)
    if shapes_differ(first.shape, second.shape):
        raise ShapeError(f"{names[0]} {first} and {names[1]} {second} must have the same shape", 1)
    if first.dtype != second.dtype:
        raise ShapeError(f"{names[0]} {first} and {names[1]} {second} must have the same dtype", 1)


def _pair_infer(a: Attrs, ins: Types) -> Types:
    """(prediction, target) of the same shape -> ()."""
    pred, target = ins
    _same_shape(pred, target, ("prediction", "target"))
    _need_batch(a, pred)
    return _scalar(pred)


def _kl_infer(a: Attrs, ins: Types) -> Types:
    mu, logvar = ins
    _same_shape(mu, logvar, ("mu", "logvar"))
    _need_batch(a, mu)
    return _scalar(mu)


def _without(shape: Shape, axis: int) -> Shape:
    return shape[:axis] + shape[axis + 1:]


def _index_target(logits: TensorType, target: TensorType, axis: int) -> None:
    """Class indices: i64, of logits' shape without the class axis."""
    want = _without(logits.shape, axis)
    if target.dtype != "i64":
        raise ShapeError(f"class-index target {target} must be i64", 1)
    if shapes_differ(want, target.shape):
        raise ShapeError(f"class-index target {target} must have shape {shape_str(want)}: logits {logits} "
                         f"without their class axis {axis}", 1)


def _probability_target(logits: TensorType, target: TensorType, axis: int, given: int) -> None:
    """Class probabilities (or one-hot rows): logits' float dtype and exactly logits' shape."""
    if target.rank == logits.rank and not shapes_differ(_without(target.shape, axis), _without(logits.shape, axis)) \
            and differ(target.shape[axis], logits.shape[axis]):
        raise ShapeError(f"target {target} has {target.shape[axis]} classes on axis {given} but logits {logits} "
                         f"have {logits.shape[axis]}", 1)
    if shapes_differ(target.shape, logits.shape):
        indices = not shapes_differ(target.shape, _without(logits.shape, axis))
        hint = " (class indices must be i64)" if indices else ""
        raise ShapeError(f"probability target {target} must have the shape of logits {logits}{hint}", 1)
    if target.dtype != logits.dtype:
        raise ShapeError(f"probability target {target} must have the dtype of logits {logits}", 1)


def _class_axis(a: Attrs, logits: TensorType) -> int:
    """The class axis, normalized; never the batch dim 0, which `reduce` averages over."""
    if logits.rank < 2:
        raise ShapeError(f"expects logits with a batch dim and a class dim, got {logits}", 0)
    axis = norm_dim(a["axis"], logits.rank)
    if axis == 0:
        raise ShapeError(f"the class axis {a['axis']} of logits {logits} is the batch dim 0", 0)
    return axis


def _cross_entropy_infer(a: Attrs, ins: Types) -> Types:
    logits, target = ins
    _need_float(logits, "logits", 0)
    axis = _class_axis(a, logits)
    if target.dtype in FLOAT_DTYPES:
        if a["ignore"] is not None:
            raise ShapeError(f"`ignore` needs i64 class-index targets, got the probability target {target}", 1)
        _probability_target(logits, target, axis, a["axis"])
    else:
        _index_target(logits, target, axis)
    return _scalar(logits)


def _accuracy_infer(a: Attrs, ins: Types) -> Types:
    logits, target = ins
    _need_float(logits, "logits", 0)
    _index_target(logits, target, norm_dim(a["axis"], logits.rank))
    return [TensorType("f32", ())]  # `.float().mean()`


def _float_same(a: Attrs, ins: Types) -> Types:
    _need_float(ins[0], "input", 0)
    return [ins[0]]


def _to_levels_infer(a: Attrs, ins: Types) -> Types:
    _need_float(ins[0], "intensities", 0)
    return [TensorType("i64", ins[0].shape)]


# --- PyTorch forms -------------------------------------------------------------------------------------

_SUM = 'reduction="sum"'


def _reduced(src: OpSource, func: str, args: list[str | None], batch_of: str) -> str:
    """`func(args)`, PyTorch's mean; for reduce="sum", `func(args, reduction="sum") / x.shape[0]`."""
    if _const(src, "reduce") == "mean":
        return _call(func, args)
    return f"{_call(func, [*args, _SUM])} / {_atom(batch_of)}.shape[0]"


def _functional_loss(func: str) -> TorchEntry:
    return _multi(lambda s, xs: _reduced(s, func, list(xs), xs[0]))


def _classes_on_dim_1(src: OpSource) -> bool:
    axis, rank = _value(src.attrs["axis"]), len(src.in_shapes[0]) if src.in_shapes else 0
    return axis == 1 or isinstance(axis, int) and rank > 0 and axis % rank == 1


def _cross_entropy_torch(src: OpSource, xs: list[str]) -> str:
    """F.cross_entropy wants the classes on dim 1: another class axis is moved there, in the
    logits and in a probability target (which has the logits' rank; class indices have one less)."""
    logits, target = xs
    moved = logits
    if not _classes_on_dim_1(src):
        move = f".movedim({_tidy(src.attrs['axis'])}, 1)"
        moved = f"{_atom(logits)}{move}"
        if len({len(s) for s in src.in_shapes}) == 1:
            target = f"{_atom(target)}{move}"
    args = [moved, target, _kw(src, "smoothing", 0.0, "label_smoothing"), _ignore_kw(src, "ignore_index")]
    return _reduced(src, "F.cross_entropy", args, logits)


def _ignore_kw(src: OpSource, keyword: str) -> str | None:
    """`keyword=index` for an `ignore` index; None where there is none (`ignore=none` included)."""
    return None if _value(src.attrs["ignore"]) is None else f"{keyword}={_tidy(src.attrs['ignore'])}"


def _kl_torch(src: OpSource, xs: list[str]) -> str:
    """-1/2 * sum(1 + logvar - mu^2 - exp(logvar)): KL(N(mu, exp(logvar)) || N(0, I)) in closed form."""
    mu, logvar = (_atom(x) for x in xs)
    terms = f"1 + {logvar} - {mu}.pow(2) - {logvar}.exp()"
    if _const(src, "reduce") == "mean":
        return f"-0.5 * torch.mean({terms})"
    return f"-0.5 * torch.sum({terms}) / {mu}.shape[0]"


def _accuracy_torch(src: OpSource, xs: list[str]) -> str:
    logits, target = xs
    if _ignore_kw(src, "ignore") is None:
        return f"({_atom(logits)}.argmax({_tidy(src.attrs['axis'])}) == {target}).float().mean()"
    hits = f"{_atom(logits)}.argmax({_tidy(src.attrs['axis'])}) == {_atom(target)}"
    kept = f"{_atom(target)} != {_tidy(src.attrs['ignore'])}"  # only targets not ignored count
    return f"(({hits}) & ({kept})).sum() / ({kept}).sum().clamp(min=1)"


def _to_levels_torch(src: OpSource, x: str) -> str:
    levels = _tidy(src.attrs["levels"])
    return f"{_atom(_join('*', [x, levels]))}.floor().clamp(0, {_simplify(f'{levels} - 1')}).long()"


# --- ONNX forms ----------------------------------------------------------------------------------------

def _training_only(ctx: OnnxContext) -> list[str]:
    raise NoOnnxForm("it is a training objective, and the ONNX export is the inference graph")


def _bits_onnx(ctx: OnnxContext) -> list[str]:
    """x / ln 2, the divisor rounded to x's dtype as PyTorch rounds the Python float."""
    return [ctx.b.one("Div", [ctx.x, scalar(ctx, math.log(2), "ln2")], ctx.hint)]


def _to_levels_onnx(ctx: OnnxContext) -> list[str]:
    """floor(x * levels) clipped to [0, levels - 1] in x's dtype, then cast to int64."""
    b, h, levels = ctx.b, ctx.hint, ctx.attrs["levels"]
    scaled = b.one("Mul", [ctx.x, scalar(ctx, float(levels), "levels")], f"{h}/scaled")
    floored = b.one("Floor", [scaled], f"{h}/floor")
    clipped = b.one("Clip", [floored, scalar(ctx, 0.0, "zero"), scalar(ctx, float(levels - 1), "top_level")],
                    f"{h}/clipped")
    return [b.one("Cast", [clipped], h, to=ONNX_DTYPES["i64"])]


# --- the table -----------------------------------------------------------------------------------------

_PAIR_RULE = "(B, ..), (B, ..) -> ()"


def _pair_loss(name: str, doc: str, func: str, flops: int) -> OpDef:
    """An element-wise loss of (prediction, target), `flops` per input element."""
    return OpDef(name, (_reduce("mean"),), _pair_infer, doc, _PAIR_RULE, "loss", inputs=(2, 2), input_flops=flops,
                 torch=_functional_loss(func), onnx=_training_only)


register(
    # per logit: exp, sum, and the log-sum-exp's share; the target's gather is noise
    OpDef("cross_entropy", (Param("axis", int_(), 1, "int"), Param("smoothing", prob, 0.0, "number"),
                            _reduce("mean"), _ignore()), _cross_entropy_infer,
          "softmax cross-entropy of logits against i64 class indices or class probabilities "
          "(`smoothing`: label smoothing; `reduce` as for `mse`; `ignore`: a class index that adds no loss "
          "and is not counted in the mean, e.g. padding)",
          "(B, C, ..), (B, ..) i64 or (B, C, ..) -> ()", "loss", inputs=(2, 2), input_flops=3,
          torch=_multi(_cross_entropy_torch), onnx=_training_only),
    _pair_loss("mse", ('squared error; `reduce`: "mean" over all elements, or "sum" per example and the mean '
                       'over the batch'), "F.mse_loss", 2),
    _pair_loss("l1", "absolute error; `reduce` as for `mse`", "F.l1_loss", 2),
    _pair_loss("bce", "binary cross-entropy of probabilities in [0, 1]; `reduce` as for `mse`",
               "F.binary_cross_entropy", 4),
    _pair_loss("bce_logits", "binary cross-entropy of logits (the sigmoid inside, stable); `reduce` as for `mse`",
               "F.binary_cross_entropy_with_logits", 4),
    OpDef("kl_normal", (_reduce("sum"),), _kl_infer,
          "KL(N(mu, exp(logvar)) ‖ N(0, I)) in closed form: a VAE's prior term, in nats per example by "
          "default (`reduce` as for `mse`)",
          "(B, ..) mu, (B, ..) logvar -> ()", "loss", inputs=(2, 2), input_flops=3,
          torch=_multi(_kl_torch), onnx=_training_only),
    OpDef("accuracy", (Param("axis", int_(), 1, "int"), _ignore()), _accuracy_infer,
          "fraction of positions where the arg-max of logits along `axis` is the i64 target "
          "(`ignore`: a target index, e.g. padding, whose positions are not counted)",
          "(B, C, ..), (B, ..) i64 -> () f32", "loss", inputs=(2, 2), input_flops=1,
          torch=_multi(_accuracy_torch), onnx=_training_only),
    OpDef("bits", (), _float_same, "x / ln 2: nats to bits (bits per dim from nats per dim)", "x -> same", "loss",
          elementwise_flops=1, torch=_unary(lambda s: "Bits()", lambda s, x: _join("/", [x, "math.log(2)"]),
                                            ("Bits",)), onnx=_bits_onnx),
    OpDef("detach", (), same, "x, with no gradient flowing back (GAN objectives)", "x -> same", "loss",
          torch=_unary(lambda s: "Detach()", lambda s, x: f"{_atom(x)}.detach()", ("Detach",)), onnx=identity),
    # multiply, floor, two comparisons
    OpDef("to_levels", (Param("levels", int_(2), type_name="int"),), _to_levels_infer,
          "intensities in [0, 1] to i64 levels clamp(floor(x * levels), 0, levels - 1) (PixelCNN targets)",
          "x -> same shape, i64", "loss", elementwise_flops=4,
          torch=_unary(lambda s: _call("ToLevels", [_tidy(s.attrs["levels"])]), _to_levels_torch, ("ToLevels",)),
          onnx=_to_levels_onnx),
)
