"""Normalization and regularization: batch norm, layer norm (over trailing dims, and ConvNeXt's
channels-first one), group norm, dropout, stochastic depth, random shifts (data augmentation), with
their PyTorch modules and their ONNX forms in inference mode (running statistics; dropout,
stochastic depth and random shifts the identity)."""
from __future__ import annotations

from ..emit.onnx.context import OnnxContext, filled, identity, scalar
from ..emit.torch.forms import Args, OpSource, TorchEntry, _call, _const, _kw, _size, _tidy, _unary, _weighted
from ..ir.dims import Dim
from .table import (Attrs, OpDef, Param, ShapeError, Types, bool_, concrete, divides, float_, int_,
                    need_float, need_rank, prob, register, same)


def _bn_infer(ranks: tuple[int, ...], layout: str):
    def infer(a: Attrs, ins: Types) -> Types:
        need_rank(ins[0], ranks, layout)
        need_float(ins[0])
        concrete(ins[0].shape[1], "the channel dimension")
        return [ins[0]]
    return infer


def _bn_weights(a: Attrs, ins: Types):
    c = (ins[0].shape[1],)
    w = [("weight", c, True), ("bias", c, True)] if a["affine"] else []
    return w + [("running_mean", c, False), ("running_var", c, False), ("num_batches_tracked", (), False)]


def _bn_torch(n: int) -> TorchEntry:
    return _weighted(f"batchnorm{n}d", lambda s: _call(f"nn.BatchNorm{n}d", [
        _size(s, 0, 1), _kw(s, "eps", 1e-5), _kw(s, "momentum", 0.1), _kw(s, "affine", True)]))


def _bn_onnx(ctx: OnnxContext) -> list[str]:
    c = ctx.static(0, 1)
    if "weight" in ctx.weights:
        scale, bias = ctx.weights["weight"], ctx.weights["bias"]
    else:
        scale, bias = filled(ctx, 1.0, (c,), "ones"), filled(ctx, 0.0, (c,), "zeros")
    inputs = [ctx.x, scale, bias, ctx.weights["running_mean"], ctx.weights["running_var"]]
    return [ctx.b.one("BatchNormalization", inputs, ctx.hint, epsilon=float(ctx.attrs["eps"]))]


_BN_PARAMS = (Param("eps", float_, 1e-5, "number"), Param("momentum", float_, 0.1, "number"),
              Param("affine", bool_, True, "bool"))

register(
    OpDef("batchnorm1d", _BN_PARAMS, _bn_infer((2, 3), "(B, C) or (B, C, L)"), "batch normalization over (B, C[, L])",
          "(B, C[, L]) -> same", "normalization", weights=_bn_weights, elementwise_flops=2,
          torch=_bn_torch(1), onnx=_bn_onnx),
    OpDef("batchnorm2d", _BN_PARAMS, _bn_infer((4,), "(B, C, H, W)"), "batch normalization over (B, C, H, W)",
          "(B, C, H, W) -> same", "normalization", weights=_bn_weights, elementwise_flops=2,
          torch=_bn_torch(2), onnx=_bn_onnx),
)


def _ln_dims(a: Attrs, ins: Types) -> tuple[Dim, ...]:
    x = ins[0]
    n = a["dims"]
    if n > x.rank:
        raise ShapeError(f"cannot normalize the last {n} dims of a rank-{x.rank} tensor")
    for d in x.shape[x.rank - n:]:
        concrete(d, "a normalized dimension")
    return x.shape[x.rank - n:]


def _ln_infer(a: Attrs, ins: Types) -> Types:
    need_float(ins[0])
    _ln_dims(a, ins)
    return [ins[0]]


def _ln_weights(a: Attrs, ins: Types):
    shape = _ln_dims(a, ins)
    return [("weight", shape, True), ("bias", shape, True)] if a["affine"] else []


def _ln_module(src: OpSource) -> str:
    x = src.in_shapes[0]
    n = _const(src, "dims")
    dims = [_size(src, 0, d) for d in range(len(x) - n, len(x))]
    shape = dims[0] if n == 1 else f"({', '.join(dims)})"
    return _call("nn.LayerNorm", [shape, _kw(src, "eps", 1e-5), _kw(src, "affine", True, "elementwise_affine")])


def _ln_onnx(ctx: OnnxContext) -> list[str]:
    n = ctx.attrs["dims"]
    if "weight" in ctx.weights:
        inputs = [ctx.x, ctx.weights["weight"], ctx.weights["bias"]]
    else:
        shape = tuple(ctx.static(0, d) for d in range(ctx.rank() - n, ctx.rank()))
        inputs = [ctx.x, filled(ctx, 1.0, shape, "ones")]
    return [ctx.b.one("LayerNormalization", inputs, ctx.hint, axis=-n, epsilon=float(ctx.attrs["eps"]))]


register(OpDef(
    "layernorm", (Param("eps", float_, 1e-5, "number"), Param("dims", int_(1), 1, "int (trailing dims normalized)"),
                  Param("affine", bool_, True, "bool")),
    _ln_infer, "layer normalization over the last `dims` dimensions", "(..., D) -> same", "normalization",
    weights=_ln_weights, elementwise_flops=5, torch=_weighted("layernorm", _ln_module), onnx=_ln_onnx))


def _ln2d_infer(a: Attrs, ins: Types) -> Types:
    need_rank(ins[0], (4,), "(B, C, H, W)")
    need_float(ins[0])
    concrete(ins[0].shape[1], "the channel dimension")
    return [ins[0]]


def _ln2d_onnx(ctx: OnnxContext) -> list[str]:
    """LayerNorm2d as torchvision writes it: channels last, LayerNormalization over C, back."""
    b, h = ctx.b, ctx.hint
    last = b.one("Transpose", [ctx.x], f"{h}/channels_last", perm=[0, 2, 3, 1])  # (B, H, W, C)
    normed = b.one("LayerNormalization", [last, ctx.weights["weight"], ctx.weights["bias"]], f"{h}/normalized",
                   axis=-1, epsilon=float(ctx.attrs["eps"]))
    return [b.one("Transpose", [normed], h, perm=[0, 3, 1, 2])]  # (B, C, H, W)


# ConvNeXt's LayerNorm2d (torchvision.models.convnext): nn.LayerNorm(C) applied at each position
# of (B, C, H, W), so its state_dict is nn.LayerNorm's; ConvNeXt builds it with eps=1e-6, the
# default here, while the class keeps nn.LayerNorm's 1e-5 (so the emitted eps is written out).
register(OpDef(
    "layernorm2d", (Param("eps", float_, 1e-6, "number"),), _ln2d_infer,
    "layer normalization over the channels of (B, C, H, W) at each position (ConvNeXt's LayerNorm2d)",
    "(B, C, H, W) -> same", "normalization",
    weights=lambda a, ins: [("weight", (ins[0].shape[1],), True), ("bias", (ins[0].shape[1],), True)],
    elementwise_flops=5,
    torch=_weighted("layernorm2d", lambda s: _call("LayerNorm2d", [_size(s, 0, 1), _kw(s, "eps", 1e-5)]),
                    ("LayerNorm2d",)),
    onnx=_ln2d_onnx))


def _gn_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    if x.rank < 2:
        raise ShapeError("expects (B, C, ...)")
    c = concrete(x.shape[1], "the channel dimension")
    if not divides(a["groups"], c):
        raise ShapeError(f"groups={a['groups']} must divide the {c} channels")
    return [x]


def _gn_onnx(ctx: OnnxContext) -> list[str]:
    """nn.GroupNorm: per (sample, group) mean and biased variance over the group's channels and
    positions, then a per-channel affine. Opset 18's GroupNormalization takes per-group scale and
    bias (per-channel only from opset 21), so the statistics are computed on x reshaped to
    (B, G, -1), spread to (B, C, 1, ..) and applied to x itself, which keeps every dim visible
    to shape inference: y = x * (rstd * w) + (b - mean * rstd * w)."""
    b, h = ctx.b, ctx.hint
    g, rank, c = ctx.attrs["groups"], ctx.rank(), ctx.static(0, 1)
    grouped = b.one("Reshape", [ctx.x, b.ints([0, g, -1])], f"{h}/grouped")
    axes = b.ints([2], "axes")
    mean = b.one("ReduceMean", [grouped, axes], f"{h}/mean", keepdims=1)
    centred = b.one("Sub", [grouped, mean], f"{h}/centred")
    var = b.one("ReduceMean", [b.one("Mul", [centred, centred], f"{h}/square"), axes], f"{h}/var", keepdims=1)
    rstd = b.one("Reciprocal", [b.one("Sqrt", [b.one("Add", [var, scalar(ctx, ctx.attrs["eps"], "eps")],
                                                       f"{h}/var_eps")], f"{h}/std")], f"{h}/rstd")
    per_channel = b.ints([0, c] + [1] * (rank - 2))

    def spread(v: str, name: str) -> str:
        v = b.one("Expand", [v, b.ints([1, 1, c // g])], f"{h}/{name}_expanded")
        return b.one("Reshape", [v, per_channel], f"{h}/{name}_c")

    weight = b.one("Reshape", [ctx.weights["weight"], b.ints([c] + [1] * (rank - 2))], f"{h}/weight_c")
    bias = b.one("Reshape", [ctx.weights["bias"], b.ints([c] + [1] * (rank - 2))], f"{h}/bias_c")
    scale = b.one("Mul", [spread(rstd, "rstd"), weight], f"{h}/scale")
    shift = b.one("Sub", [bias, b.one("Mul", [spread(mean, "mean"), scale], f"{h}/mean_scaled")], f"{h}/shift")
    return [b.one("Add", [b.one("Mul", [ctx.x, scale], f"{h}/scaled"), shift], h)]


register(OpDef(
    "groupnorm", (Param("groups", int_(1), type_name="int"), Param("eps", float_, 1e-5, "number")),
    _gn_infer, "group normalization", "(B, C, ...) -> same", "normalization",
    weights=lambda a, ins: [("weight", (ins[0].shape[1],), True), ("bias", (ins[0].shape[1],), True)],
    elementwise_flops=5,
    torch=_weighted("groupnorm", lambda s: _call("nn.GroupNorm", [_tidy(s.attrs["groups"]), _size(s, 0, 1),
                                                                   _kw(s, "eps", 1e-5)])),
    onnx=_gn_onnx))


# --- dropout ------------------------------------------------------------------------------------

def _dropout2d_infer(a: Attrs, ins: Types) -> Types:
    need_rank(ins[0], (4,), "(B, C, H, W)")
    return [ins[0]]


def _dropout_torch(cls: str, fn: str) -> TorchEntry:
    p: Args = lambda s: [_kw(s, "p", 0.5, "")]
    return _unary(lambda s: _call(cls, p(s)), lambda s, x: _call(fn, [x, *p(s), "training=self.training"]))


register(
    OpDef("dropout", (Param("p", prob, 0.5, "number in [0, 1)"),), same,
          "zero elements with probability p while training, scale by 1/(1-p); identity at inference",
          "x -> same", "regularization", torch=_dropout_torch("nn.Dropout", "F.dropout"), onnx=identity),
    OpDef("dropout2d", (Param("p", prob, 0.5, "number in [0, 1)"),), _dropout2d_infer,
          "zero whole channels with probability p while training", "x -> same", "regularization",
          torch=_dropout_torch("nn.Dropout2d", "F.dropout2d"), onnx=identity),
)


# --- stochastic depth ---------------------------------------------------------------------------

def _drop_path_infer(a: Attrs, ins: Types) -> Types:
    """Samples are dropped along dim 0; the noise is float (PyTorch's x * noise), so floats only."""
    if ins[0].rank < 1:
        raise ShapeError("expects a batch dimension (B, ...), got a scalar")
    need_float(ins[0])
    return [ins[0]]


def _drop_path_torch() -> TorchEntry:
    p: Args = lambda s: [_tidy(s.attrs["p"])]
    return _unary(lambda s: _call("DropPath", p(s)),
                  lambda s, x: _call("drop_path", [x, *p(s), "training=self.training"]), ("drop_path", "DropPath"))


register(OpDef(
    "drop_path", (Param("p", prob, type_name="number in [0, 1)"),), _drop_path_infer,
    "stochastic depth (Huang et al. 2016): while training, zero each sample with probability p and scale "
    "the others by 1/(1-p); identity at inference", "(B, ...) -> same", "regularization",
    torch=_drop_path_torch(), onnx=identity))


# --- data augmentation ----------------------------------------------------------------------------

def _random_shift_infer(a: Attrs, ins: Types) -> Types:
    """Images (B, .., H, W): the last two dims are translated; both must be wider than the shift."""
    x = ins[0]
    if x.rank < 3:
        raise ShapeError(f"translates images (B, .., H, W) along their last two dims, got {x}")
    need_float(x)
    for d in x.shape[-2:]:
        if d.is_const and d.value <= a["pixels"]:
            raise ShapeError(f"a shift of up to {a['pixels']} px moves a dim of {d.value} px out of the image")
    return [x]


def _random_shift_torch() -> TorchEntry:
    px: Args = lambda s: [_tidy(s.attrs["pixels"])]
    return _unary(lambda s: _call("RandomShift", px(s)),
                  lambda s, x: _call("random_shift", [x, *px(s), "training=self.training"]),
                  ("random_shift", "RandomShift"))


register(OpDef(
    "random_shift", (Param("pixels", int_(0), type_name="int >= 0"),), _random_shift_infer,
    "data augmentation: while training, translate each example by its own random offsets in "
    "[-pixels, pixels] along H and W (zero fill); identity at inference", "(B, .., H, W) -> same",
    "regularization", torch=_random_shift_torch(), onnx=identity))
