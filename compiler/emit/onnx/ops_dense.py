"""ONNX converters for convolution, pooling, normalization, activations and tensor ops.

Each converter reproduces the generated PyTorch module's computation (eval mode) exactly: the
same padding split, pooling size rule, coordinate transform, reduction order where it matters.
Symbolic dims (`B`, `T`, `H`) never become constants: reshapes use ONNX's 0 / -1 codes, or the
input's `Shape` where those do not suffice.
"""
from __future__ import annotations

import math

import numpy as np

from .builder import Converter, NoOnnxForm, OnnxContext

INT64_MAX = 2**63 - 1
_NUMPY = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i64": np.int64, "i32": np.int32,
          "u8": np.uint8, "bool": np.bool_}


# --- helpers -------------------------------------------------------------------------------------

def _x(ctx: OnnxContext) -> str:
    return ctx.inputs[0]


def _rank(ctx: OnnxContext, i: int = 0) -> int:
    return ctx.in_types[i].rank


def _axis(ctx: OnnxContext, dim: int, rank: int | None = None) -> int:
    rank = _rank(ctx) if rank is None else rank
    return dim % rank


def _scalar(ctx: OnnxContext, value: float, hint: str, like: int = 0) -> str:
    """A scalar constant in the dtype of input `like` (CastLike where numpy has no such dtype)."""
    dtype = ctx.in_types[like].dtype
    if dtype in _NUMPY:
        return ctx.b.const(np.array(value, dtype=_NUMPY[dtype]), hint)
    c = ctx.b.const(np.array(value, dtype=np.float32), hint)
    return ctx.b.one("CastLike", [c, ctx.inputs[like]], f"{ctx.hint}/{hint}")


def _filled(ctx: OnnxContext, value: float, shape: tuple[int, ...], hint: str) -> str:
    """A constant tensor of `shape` filled with `value`, in input 0's float dtype."""
    dtype = ctx.in_types[0].dtype
    if dtype in _NUMPY:
        return ctx.b.const(np.full(shape, value, dtype=_NUMPY[dtype]), hint)
    c = ctx.b.const(np.full(shape, value, dtype=np.float32), hint)
    return ctx.b.one("CastLike", [c, ctx.inputs[0]], f"{ctx.hint}/{hint}")


def _unary(op_type: str, **attrs):
    def convert(ctx: OnnxContext) -> list[str]:
        return [ctx.b.one(op_type, [_x(ctx)], ctx.hint, **attrs)]
    return convert


def _identity(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Identity", [_x(ctx)], ctx.hint)]


def _reshape(ctx: OnnxContext, x: str, start: int, end: int, sizes: list[int], hint: str) -> str:
    """Replace dims start..end of x (shaped like input 0) by `sizes` (literals, one may be -1).

    A constant target: dims before `start` as 0 (copy), the others as their static sizes, a single
    remaining symbolic dim as -1. When dims after `end` are symbolic too, they are first moved in
    front of the replaced range (Transpose), copied as 0, and moved back, so that every size stays
    visible to ONNX shape inference (no target assembled from Shape at run time)."""
    rank = _rank(ctx)
    trail = list(range(end + 1, rank))
    target = [0] * start + list(sizes) + [ctx.static(0, d) for d in trail]
    missing = [k for k, v in enumerate(target) if v is None]
    if len(missing) == 1 and -1 not in target:
        target[missing[0]] = -1
    elif missing:
        perm = list(range(start)) + trail + list(range(start, end + 1))
        moved = ctx.b.one("Transpose", [x], f"{hint}/to_front", perm=perm)
        target = [0] * (start + len(trail)) + list(sizes)
        y = ctx.b.one("Reshape", [moved, ctx.b.ints(target)], f"{hint}/reshape")
        back = list(range(start)) + [start + len(trail) + k for k in range(len(sizes))] + \
            [start + k for k in range(len(trail))]
        return ctx.b.one("Transpose", [y], hint, perm=back)
    return ctx.b.one("Reshape", [x, ctx.b.ints(target)], hint)


# --- convolution ---------------------------------------------------------------------------------

def _conv_pads(a, n: int) -> list[int]:
    if a["padding"] == "same":  # PyTorch: total d*(k-1), the odd extra element at the end
        total = [a["dilation"][i] * (a["kernel"][i] - 1) for i in range(n)]
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    return list(a["padding"]) * 2


def _conv_node(ctx: OnnxContext, weight: str) -> list[str]:
    a, n = ctx.attrs, _rank(ctx) - 2
    inputs = [_x(ctx), weight] + ([ctx.weights["bias"]] if "bias" in ctx.weights else [])
    return [ctx.b.one("Conv", inputs, ctx.hint, kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
                      pads=_conv_pads(a, n), dilations=list(a["dilation"]), group=a["groups"])]


def _conv(ctx: OnnxContext) -> list[str]:
    return _conv_node(ctx, ctx.weights["weight"])


def pixelcnn_mask(kh: int, kw: int, mask: str) -> np.ndarray:
    """MaskedConv2d's spatial mask: rows above the centre, and the centre row left of the centre
    (including the centre for mask "B")."""
    m = np.ones((kh, kw), dtype=np.float32)
    m[kh // 2, kw // 2 + (mask == "B"):] = 0
    m[kh // 2 + 1:] = 0
    return m


def _masked_conv(ctx: OnnxContext) -> list[str]:
    kh, kw = ctx.attrs["kernel"]
    masked = ctx.arrays["weight"] * pixelcnn_mask(kh, kw, ctx.attrs["mask"])
    return _conv_node(ctx, ctx.transformed_weight("weight", masked, "_masked"))


def _conv_transpose(ctx: OnnxContext) -> list[str]:
    a = ctx.attrs
    inputs = [_x(ctx), ctx.weights["weight"]] + ([ctx.weights["bias"]] if "bias" in ctx.weights else [])
    return [ctx.b.one("ConvTranspose", inputs, ctx.hint, kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
                      pads=list(a["padding"]) * 2, output_padding=list(a["output_padding"]),
                      dilations=list(a["dilation"]), group=a["groups"])]


# --- pooling -------------------------------------------------------------------------------------

def _pool(ctx: OnnxContext, op_type: str, x: str, padded: bool, **attrs) -> str:
    """A MaxPool / AveragePool node with PyTorch's output size (`padded`: x holds the padding).

    Where a size is static, the end pad is chosen so that ONNX's division yields PyTorch's count,
    ceil_mode rule included (the last window starts inside the input or the left padding). ONNX
    pads never count as elements, so an average divides by the window's part inside x, as PyTorch
    does. A symbolic size with ceil_mode has no padding (the shape rule requires it) and keeps
    ONNX's ceil_mode; static dims beside it then get an exact span (cropping unused elements)."""
    a, n = ctx.attrs, _rank(ctx) - 2
    stride, dilation = a["stride"] or a["kernel"], a.get("dilation") or (1,) * n
    ceil = a["ceil_mode"] and any(ctx.static(0, 2 + i) is None for i in range(n))
    begin, end, crop = [], [], []
    for i in range(n):
        p, size = a["padding"][i], ctx.static(0, 2 + i)
        begin.append(0 if padded else p)
        if size is None:
            end.append(0 if padded else p)
            continue
        out = ctx.out_types[0].shape[2 + i].value
        span = (out - 1) * stride[i] + dilation[i] * (a["kernel"][i] - 1) + 1
        have = size + (2 * p if padded else p)  # x's extent, with its begin (and end) padding
        extra = span - have  # < stride in floor mode: floor division drops the rest
        end.append(max(0, extra) if a["ceil_mode"] else (0 if padded else p))
        if ceil and extra < 0:
            crop.append((2 + i, (size + (2 * p if padded else 0)) + extra))
    if crop:
        axes, ends = [c[0] for c in crop], [c[1] for c in crop]
        x = ctx.b.one("Slice", [x, ctx.b.ints([0] * len(crop), "starts"), ctx.b.ints(ends, "ends"),
                                ctx.b.ints(axes, "axes")], f"{ctx.hint}/crop")
    return ctx.b.one(op_type, [x], ctx.hint, kernel_shape=list(a["kernel"]), strides=list(stride),
                     pads=begin + end, ceil_mode=int(ceil), **attrs)


def _maxpool(ctx: OnnxContext) -> list[str]:
    return [_pool(ctx, "MaxPool", _x(ctx), False, dilations=list(ctx.attrs["dilation"]))]


def _avgpool(ctx: OnnxContext) -> list[str]:
    """PyTorch divides by the window's part inside the padded input (count_include_pad) or inside
    the input. With count_include_pad the padding becomes an explicit zero Pad; the ONNX pads
    (which only complete ceil_mode windows) are never counted."""
    a = ctx.attrs
    x, padded = _x(ctx), a["count_include_pad"] and any(a["padding"])
    if padded:
        x = ctx.b.one("Pad", [x, ctx.b.ints([0, 0, *a["padding"], 0, 0, *a["padding"]])], f"{ctx.hint}/pad",
                      mode="constant")
    return [_pool(ctx, "AveragePool", x, padded, count_include_pad=0)]


def _adaptive(kind: str):
    pool, glob, reduce = {"avg": ("AveragePool", "GlobalAveragePool", "ReduceMean"),
                          "max": ("MaxPool", "GlobalMaxPool", "ReduceMax")}[kind]

    def convert(ctx: OnnxContext) -> list[str]:
        out = ctx.attrs["output"]
        if all(o == 1 for o in out):
            return [ctx.b.one(glob, [_x(ctx)], ctx.hint)]
        kernel, reduced = [], []
        for i, o in enumerate(out):
            size = ctx.static(0, 2 + i)
            if size is None and o == 1:
                reduced.append(2 + i)
                kernel.append(1)
            elif size is None:
                raise NoOnnxForm(f"adaptive pooling of the symbolic size `{ctx.in_types[0].shape[2 + i]}` "
                                 f"to {o} has input-dependent windows")
            elif size % o:
                raise NoOnnxForm(f"input size {size} is not a multiple of the output size {o}, so the "
                                 "adaptive windows differ in size and overlap (no single pooling window)")
            else:
                kernel.append(size // o)
        x = _x(ctx)
        if reduced:
            x = ctx.b.one(reduce, [x, ctx.b.ints(reduced)], f"{ctx.hint}/reduce", keepdims=1)
        return [ctx.b.one(pool, [x], ctx.hint, kernel_shape=kernel, strides=kernel)]
    return convert


def _upsample(ctx: OnnxContext) -> list[str]:
    a = ctx.attrs
    s = float(a["scale"])
    scales = ctx.b.const(np.array([1.0, 1.0] + [s] * (_rank(ctx) - 2), dtype=np.float32), "upsample_scales")
    if a["mode"] == "nearest":  # nn.Upsample(mode="nearest"): src = floor(dst / scale)
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        attrs = dict(mode="linear",
                     coordinate_transformation_mode="align_corners" if a["align_corners"] else "half_pixel")
    return [ctx.b.one("Resize", [_x(ctx), "", scales], ctx.hint, **attrs)]


# --- normalization -------------------------------------------------------------------------------

def _batchnorm(ctx: OnnxContext) -> list[str]:
    c = ctx.static(0, 1)
    if "weight" in ctx.weights:
        scale, bias = ctx.weights["weight"], ctx.weights["bias"]
    else:
        scale, bias = _filled(ctx, 1.0, (c,), "ones"), _filled(ctx, 0.0, (c,), "zeros")
    inputs = [_x(ctx), scale, bias, ctx.weights["running_mean"], ctx.weights["running_var"]]
    return [ctx.b.one("BatchNormalization", inputs, ctx.hint, epsilon=float(ctx.attrs["eps"]))]


def _layernorm(ctx: OnnxContext) -> list[str]:
    n = ctx.attrs["dims"]
    if "weight" in ctx.weights:
        inputs = [_x(ctx), ctx.weights["weight"], ctx.weights["bias"]]
    else:
        shape = tuple(ctx.static(0, d) for d in range(_rank(ctx) - n, _rank(ctx)))
        inputs = [_x(ctx), _filled(ctx, 1.0, shape, "ones")]
    return [ctx.b.one("LayerNormalization", inputs, ctx.hint, axis=-n, epsilon=float(ctx.attrs["eps"]))]


def _groupnorm(ctx: OnnxContext) -> list[str]:
    """nn.GroupNorm: per (sample, group) mean and biased variance over the group's channels and
    positions, then a per-channel affine. Opset 18's GroupNormalization takes per-group scale and
    bias (per-channel only from opset 21), so the statistics are computed on x reshaped to
    (B, G, -1), spread to (B, C, 1, ..) and applied to x itself, which keeps every dim visible
    to shape inference: y = x * (rstd * w) + (b - mean * rstd * w)."""
    b, h = ctx.b, ctx.hint
    g, rank, c = ctx.attrs["groups"], _rank(ctx), ctx.static(0, 1)
    grouped = b.one("Reshape", [_x(ctx), b.ints([0, g, -1])], f"{h}/grouped")
    axes = b.ints([2], "axes")
    mean = b.one("ReduceMean", [grouped, axes], f"{h}/mean", keepdims=1)
    centred = b.one("Sub", [grouped, mean], f"{h}/centred")
    var = b.one("ReduceMean", [b.one("Mul", [centred, centred], f"{h}/square"), axes], f"{h}/var", keepdims=1)
    rstd = b.one("Reciprocal", [b.one("Sqrt", [b.one("Add", [var, _scalar(ctx, ctx.attrs["eps"], "eps")],
                                                       f"{h}/var_eps")], f"{h}/std")], f"{h}/rstd")
    per_channel = b.ints([0, c] + [1] * (rank - 2))

    def spread(v: str, name: str) -> str:
        v = b.one("Expand", [v, b.ints([1, 1, c // g])], f"{h}/{name}_expanded")
        return b.one("Reshape", [v, per_channel], f"{h}/{name}_c")

    weight = b.one("Reshape", [ctx.weights["weight"], b.ints([c] + [1] * (rank - 2))], f"{h}/weight_c")
    bias = b.one("Reshape", [ctx.weights["bias"], b.ints([c] + [1] * (rank - 2))], f"{h}/bias_c")
    scale = b.one("Mul", [spread(rstd, "rstd"), weight], f"{h}/scale")
    shift = b.one("Sub", [bias, b.one("Mul", [spread(mean, "mean"), scale], f"{h}/mean_scaled")], f"{h}/shift")
    return [b.one("Add", [b.one("Mul", [_x(ctx), scale], f"{h}/scaled"), shift], h)]


# --- activations ---------------------------------------------------------------------------------

def _softplus(ctx: OnnxContext) -> list[str]:
    """F.softplus(x, beta, threshold=20): x where beta*x > 20, else log1p(exp(beta*x)) / beta."""
    beta, x = float(ctx.attrs["beta"]), _x(ctx)
    bx = x if beta == 1.0 else ctx.b.one("Mul", [x, _scalar(ctx, beta, "beta")], f"{ctx.hint}/beta_x")
    soft = ctx.b.one("Softplus", [bx], f"{ctx.hint}/soft")
    if beta != 1.0:
        soft = ctx.b.one("Div", [soft, _scalar(ctx, beta, "beta")], f"{ctx.hint}/soft_scaled")
    linear = ctx.b.one("Greater", [bx, _scalar(ctx, 20.0, "softplus_threshold")], f"{ctx.hint}/linear")
    return [ctx.b.one("Where", [linear, x, soft], ctx.hint)]


def _gelu(ctx: OnnxContext) -> list[str]:
    """PyTorch's CPU kernels: x * 0.5 * (1 + erf(x * M_SQRT1_2)), or for approximate="tanh"
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))."""
    x, b, h = _x(ctx), ctx.b, ctx.hint
    half, one = _scalar(ctx, 0.5, "half"), _scalar(ctx, 1.0, "one")
    if ctx.attrs["approximate"] == "none":
        inner = b.one("Erf", [b.one("Mul", [x, _scalar(ctx, math.sqrt(0.5), "sqrt_half")], f"{h}/scaled")],
                      f"{h}/erf")
    else:
        cube = b.one("Mul", [b.one("Mul", [x, x], f"{h}/square"), x], f"{h}/cube")
        arg = b.one("Add", [x, b.one("Mul", [_scalar(ctx, 0.044715, "gelu_kappa"), cube], f"{h}/kappa_cube")],
                    f"{h}/poly")
        arg = b.one("Mul", [_scalar(ctx, math.sqrt(2.0 / math.pi), "gelu_beta"), arg], f"{h}/inner")
        inner = b.one("Tanh", [arg], f"{h}/tanh")
    return [b.one("Mul", [b.one("Mul", [x, half], f"{h}/half_x"), b.one("Add", [one, inner], f"{h}/one_plus")], h)]


def _silu(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Mul", [_x(ctx), ctx.b.one("Sigmoid", [_x(ctx)], f"{ctx.hint}/sigmoid")], ctx.hint)]


def _scale(ctx: OnnxContext) -> list[str]:
    factor = ctx.attrs["factor"]
    if ctx.in_types[0].dtype not in ("f32", "f64", "f16", "bf16") and factor != int(factor):
        raise NoOnnxForm(f"scaling a {ctx.in_types[0].dtype} tensor by {factor} gives a float tensor in PyTorch")
    return [ctx.b.one("Mul", [_x(ctx), _scalar(ctx, factor, "factor")], ctx.hint)]


def _softmax(op_type: str):
    def convert(ctx: OnnxContext) -> list[str]:
        return [ctx.b.one(op_type, [_x(ctx)], ctx.hint, axis=_axis(ctx, ctx.attrs["dim"]))]
    return convert


# --- dense ---------------------------------------------------------------------------------------

def _linear(ctx: OnnxContext) -> list[str]:
    x, w = _x(ctx), ctx.weights["weight"]
    bias = [ctx.weights["bias"]] if "bias" in ctx.weights else []
    if _rank(ctx) == 2:
        return [ctx.b.one("Gemm", [x, w, *bias], ctx.hint, transB=1)]
    wt = ctx.b.one("Transpose", [w], f"{ctx.hint}/weight_t", perm=[1, 0])
    y = ctx.b.one("MatMul", [x, wt], f"{ctx.hint}/matmul" if bias else ctx.hint)
    return [ctx.b.one("Add", [y, *bias], ctx.hint)] if bias else [y]


# --- shape ---------------------------------------------------------------------------------------

def _flatten(ctx: OnnxContext) -> list[str]:
    rank = _rank(ctx)
    s, e = _axis(ctx, ctx.attrs["start"]), _axis(ctx, ctx.attrs["end"])
    if s == e:
        return _identity(ctx)
    if s == 1 and e == rank - 1:
        return [ctx.b.one("Flatten", [_x(ctx)], ctx.hint, axis=1)]
    sizes = [ctx.static(0, d) for d in range(s, e + 1)]
    return [_reshape(ctx, _x(ctx), s, e, [math.prod(sizes) if None not in sizes else -1], ctx.hint)]


def _reshape_op(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Reshape", [_x(ctx), ctx.b.ints(list(ctx.attrs["shape"]))], ctx.hint)]


def _unflatten(ctx: OnnxContext) -> list[str]:
    d = _axis(ctx, ctx.attrs["dim"])
    return [_reshape(ctx, _x(ctx), d, d, list(ctx.attrs["sizes"]), ctx.hint)]


def _permute(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Transpose", [_x(ctx)], ctx.hint, perm=[_axis(ctx, d) for d in ctx.attrs["dims"]])]


def _transpose(ctx: OnnxContext) -> list[str]:
    perm = list(range(_rank(ctx)))
    i, j = _axis(ctx, ctx.attrs["dim0"]), _axis(ctx, ctx.attrs["dim1"])
    perm[i], perm[j] = perm[j], perm[i]
    return [ctx.b.one("Transpose", [_x(ctx)], ctx.hint, perm=perm)]


def _unsqueeze(ctx: OnnxContext) -> list[str]:
    d = _axis(ctx, ctx.attrs["dim"], _rank(ctx) + 1)
    return [ctx.b.one("Unsqueeze", [_x(ctx), ctx.b.ints([d], "axes")], ctx.hint)]


def _squeeze(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Squeeze", [_x(ctx), ctx.b.ints([_axis(ctx, ctx.attrs["dim"])], "axes")], ctx.hint)]


# --- combining -----------------------------------------------------------------------------------

def _concat(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Concat", list(ctx.inputs), ctx.hint, axis=_axis(ctx, ctx.attrs["dim"]))]


def _chain(op_type: str):
    """Left to right, as PyTorch's `a + b + c` evaluates (the same rounding)."""
    def convert(ctx: OnnxContext) -> list[str]:
        y = ctx.inputs[0]
        for k, other in enumerate(ctx.inputs[1:], start=2):
            y = ctx.b.one(op_type, [y, other], ctx.hint if k == len(ctx.inputs) else f"{ctx.hint}/{k}")
        return [y]
    return convert


def _binary(op_type: str):
    def convert(ctx: OnnxContext) -> list[str]:
        return [ctx.b.one(op_type, list(ctx.inputs), ctx.hint)]
    return convert


def _div(ctx: OnnxContext) -> list[str]:
    if any(t.dtype not in ("f32", "f64", "f16", "bf16") for t in ctx.in_types):
        raise NoOnnxForm("PyTorch's `/` is true division (a float result); ONNX Div of integers truncates")
    return _binary("Div")(ctx)


def _chunk(ctx: OnnxContext) -> list[str]:
    d, chunks = _axis(ctx, ctx.attrs["dim"]), ctx.attrs["chunks"]
    size = ctx.static(0, d)
    if size is None:
        return ctx.b.node("Split", [_x(ctx)], ctx.hint, chunks, axis=d, num_outputs=chunks)
    split = ctx.b.ints([size // chunks] * chunks, "split")
    return ctx.b.node("Split", [_x(ctx), split], ctx.hint, chunks, axis=d)


def _split(ctx: OnnxContext) -> list[str]:
    sizes = list(ctx.attrs["sizes"])
    return ctx.b.node("Split", [_x(ctx), ctx.b.ints(sizes, "split")], ctx.hint, len(sizes),
                      axis=_axis(ctx, ctx.attrs["dim"]))


# --- indexing and reductions ---------------------------------------------------------------------

def _select(ctx: OnnxContext) -> list[str]:
    index = ctx.b.const(np.array(ctx.attrs["index"], dtype=np.int64), "index")
    return [ctx.b.one("Gather", [_x(ctx), index], ctx.hint, axis=_axis(ctx, ctx.attrs["dim"]))]


def _slice(ctx: OnnxContext) -> list[str]:
    a = ctx.attrs
    end = INT64_MAX if a["end"] is None else a["end"]
    inputs = [_x(ctx), ctx.b.ints([a["start"]], "starts"), ctx.b.ints([end], "ends"),
              ctx.b.ints([_axis(ctx, a["dim"])], "axes"), ctx.b.ints([a["step"]], "steps")]
    return [ctx.b.one("Slice", inputs, ctx.hint)]


def _reduce(op_type: str):
    def convert(ctx: OnnxContext) -> list[str]:
        axes = ctx.b.ints([_axis(ctx, d) for d in ctx.attrs["dim"]], "axes")
        return [ctx.b.one(op_type, [_x(ctx), axes], ctx.hint, keepdims=int(ctx.attrs["keepdim"]))]
    return convert


def _cosine_similarity(ctx: OnnxContext) -> list[str]:
    """ATen's cosine_similarity: broadcast x and y, divide each by its own norm clamped to eps,
    then sum the products: sum(x / max(||x||, eps) * y / max(||y||, eps))."""
    b, h = ctx.b, ctx.hint
    x, y = ctx.inputs
    tx, ty = ctx.in_types
    rank = max(tx.rank, ty.rank)
    if tx.shape != ty.shape:
        x = b.one("Expand", [x, b.one("Shape", [y], f"{h}/y_shape")], f"{h}/x_expanded")
        y = b.one("Expand", [y, b.one("Shape", [x], f"{h}/x_shape")], f"{h}/y_expanded")
    axes = b.ints([ctx.attrs["dim"] % rank], "axes")
    eps = _scalar(ctx, ctx.attrs["eps"], "eps")

    def unit(v: str, name: str) -> str:
        norm = b.one("ReduceL2", [v, axes], f"{h}/{name}_norm", keepdims=1)
        return b.one("Div", [v, b.one("Max", [norm, eps], f"{h}/{name}_clamped")], f"{h}/{name}_unit")

    prod = b.one("Mul", [unit(x, "x"), unit(y, "y")], f"{h}/product")
    return [b.one("ReduceSum", [prod, axes], h, keepdims=0)]


CONVERTERS: dict[str, Converter] = {
    # convolution
    "conv1d": _conv, "conv2d": _conv, "conv3d": _conv,
    "conv_transpose1d": _conv_transpose, "conv_transpose2d": _conv_transpose, "conv_transpose3d": _conv_transpose,
    "masked_conv2d": _masked_conv,
    # pooling
    "maxpool1d": _maxpool, "maxpool2d": _maxpool, "avgpool1d": _avgpool, "avgpool2d": _avgpool,
    "adaptive_avgpool1d": _adaptive("avg"), "adaptive_avgpool2d": _adaptive("avg"),
    "adaptive_maxpool1d": _adaptive("max"), "adaptive_maxpool2d": _adaptive("max"),
    "global_avgpool": _unary("GlobalAveragePool"), "global_maxpool": _unary("GlobalMaxPool"),
    "upsample": _upsample,
    # normalization and regularization
    "batchnorm1d": _batchnorm, "batchnorm2d": _batchnorm, "layernorm": _layernorm, "groupnorm": _groupnorm,
    "dropout": _identity, "dropout2d": _identity,
    # activations
    "relu": _unary("Relu"), "sigmoid": _unary("Sigmoid"), "tanh": _unary("Tanh"), "abs": _unary("Abs"),
    "exp": _unary("Exp"), "identity": _identity, "silu": _silu, "gelu": _gelu, "softplus": _softplus,
    "leaky_relu": lambda ctx: _unary("LeakyRelu", alpha=float(ctx.attrs["slope"]))(ctx),
    "elu": lambda ctx: _unary("Elu", alpha=float(ctx.attrs["alpha"]))(ctx),
    "scale": _scale, "softmax": _softmax("Softmax"), "log_softmax": _softmax("LogSoftmax"),
    # dense
    "linear": _linear,
    # shape
    "flatten": _flatten, "reshape": _reshape_op, "unflatten": _unflatten, "permute": _permute,
    "transpose": _transpose, "unsqueeze": _unsqueeze, "squeeze": _squeeze,
    # combining
    "concat": _concat, "add": _chain("Add"), "mul": _chain("Mul"), "sub": _binary("Sub"), "div": _div,
    "matmul": _binary("MatMul"), "chunk": _chunk, "split": _split,
    # indexing and reductions
    "select": _select, "slice": _slice, "sum": _reduce("ReduceSum"), "mean": _reduce("ReduceMean"),
    "cosine_similarity": _cosine_similarity,
}
