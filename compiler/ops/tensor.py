"""Dense layers, shape manipulation, element-wise arithmetic, reductions and the VAE sampler."""
from __future__ import annotations

from ..ir.dims import Dim, numel, shape_str
from ..ir.types import FLOAT_DTYPES, TensorType

from .table import (Attrs, OpDef, Param, ShapeError, Types, bool_, broadcast, concrete, float_, int_, int_list,
                    need_float, norm_dim, optional, register)


# --- linear -------------------------------------------------------------------------------

def _linear_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    if x.rank < 1:
        raise ShapeError("expects at least one dimension (..., in_features)")
    need_float(x)
    concrete(x.shape[-1], "the feature (last) dimension")
    return [x.with_shape((*x.shape[:-1], Dim.const(a["out"])))]


def _linear_weights(a: Attrs, ins: Types):
    cin = ins[0].shape[-1]
    w = [("weight", (Dim.const(a["out"]), cin), True)]
    return w + ([("bias", (Dim.const(a["out"]),), True)] if a["bias"] else [])


register(OpDef(
    "linear", (Param("out", int_(1), type_name="int"), Param("bias", bool_, True, "bool")),
    _linear_infer, "affine map of the last dimension, y = x W^T + b", "(..., in) -> (..., out)", "dense",
    weights=_linear_weights, macs=lambda a, ins, outs: numel(outs[0].shape) * ins[0].shape[-1]))


# --- reshaping ----------------------------------------------------------------------------

def _flatten_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    s, e = norm_dim(a["start"], x.rank), norm_dim(a["end"], x.rank)
    if s > e:
        raise ShapeError(f"start dim {a['start']} comes after end dim {a['end']}")
    return [x.with_shape((*x.shape[:s], numel(x.shape[s:e + 1]), *x.shape[e + 1:]))]


def _reshape_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    target = a["shape"]
    if sum(1 for d in target if d == -1) > 1 or any(d < -1 or d == 0 for d in target):
        raise ShapeError(f"shape {list(target)} may hold positive sizes and at most one -1")
    total = numel(x.shape)
    known = Dim.const(1)
    for d in target:
        known = known * (d if d != -1 else 1)
    if -1 in target:
        rest = total.exact_div(known)
        if rest is None:
            raise ShapeError(f"cannot reshape {shape_str(x.shape)} ({total} elements) to {list(target)}: "
                             f"{total} is not a multiple of {known}")
        return [x.with_shape(tuple(rest if d == -1 else Dim.const(d) for d in target))]
    if known != total:
        raise ShapeError(f"cannot reshape {shape_str(x.shape)} ({total} elements) to {list(target)} ({known} elements)")
    return [x.with_shape(tuple(Dim.const(d) for d in target))]


def _unflatten_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    sizes = a["sizes"]
    if sum(1 for v in sizes if v == -1) > 1 or any(v < -1 or v == 0 for v in sizes):
        raise ShapeError(f"sizes {list(sizes)} may hold positive sizes and at most one -1")
    known = 1
    for v in sizes:
        known *= v if v != -1 else 1
    if -1 in sizes:
        rest = x.shape[d].exact_div(known)
        if rest is None:
            raise ShapeError(f"dimension {a['dim']} of size `{x.shape[d]}` is not a multiple of {known}")
        new = tuple(rest if v == -1 else Dim.const(v) for v in sizes)
    elif x.shape[d] != Dim.const(known):
        raise ShapeError(f"dimension {a['dim']} of size `{x.shape[d]}` cannot be split into {list(sizes)}")
    else:
        new = tuple(Dim.const(v) for v in sizes)
    return [x.with_shape((*x.shape[:d], *new, *x.shape[d + 1:]))]


def _permute_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    dims = [norm_dim(d, x.rank) for d in a["dims"]]
    if sorted(dims) != list(range(x.rank)):
        raise ShapeError(f"dims {list(a['dims'])} are not a permutation of the {x.rank} dims")
    return [x.with_shape(tuple(x.shape[d] for d in dims))]


def _transpose_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    i, j = norm_dim(a["dim0"], x.rank), norm_dim(a["dim1"], x.rank)
    shape = list(x.shape)
    shape[i], shape[j] = shape[j], shape[i]
    return [x.with_shape(tuple(shape))]


def _unsqueeze_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank + 1)
    return [x.with_shape((*x.shape[:d], Dim.const(1), *x.shape[d:]))]


def _squeeze_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    if x.shape[d] != Dim.const(1):
        raise ShapeError(f"dimension {a['dim']} has size `{x.shape[d]}`, not 1")
    return [x.with_shape((*x.shape[:d], *x.shape[d + 1:]))]


register(
    OpDef("flatten", (Param("start", int_(), 1, "int"), Param("end", int_(), -1, "int")), _flatten_infer,
          "merge dims start..end into one", "(B, C, H, W) -> (B, C*H*W)", "shape"),
    OpDef("reshape", (Param("shape", int_list, type_name="[int] (one -1 allowed)"),), _reshape_infer,
          "view with a new shape of the same size; -1 is inferred", "x -> shape", "shape"),
    OpDef("unflatten", (Param("dim", int_(), type_name="int"), Param("sizes", int_list, type_name="[int] (one -1 allowed)")),
          _unflatten_infer, "split one dim into several (heads: unflatten(2, [heads, -1]))",
          "(.., n, ..) -> (.., *sizes, ..), prod(sizes) = n", "shape"),
    OpDef("permute", (Param("dims", int_list, type_name="[int]"),), _permute_infer, "reorder dims",
          "x -> x.shape[dims]", "shape"),
    OpDef("transpose", (Param("dim0", int_(), type_name="int"), Param("dim1", int_(), type_name="int")),
          _transpose_infer, "swap two dims", "x -> x with dim0, dim1 swapped", "shape"),
    OpDef("unsqueeze", (Param("dim", int_(), type_name="int"),), _unsqueeze_infer, "insert a size-1 dim",
          "x -> x with 1 inserted at dim", "shape"),
    OpDef("squeeze", (Param("dim", int_(), type_name="int"),), _squeeze_infer, "drop a size-1 dim",
          "x -> x without dim (must be 1)", "shape"),
)


# --- combining and splitting ---------------------------------------------------------------

def _concat_infer(a: Attrs, ins: Types) -> Types:
    first = ins[0]
    d = norm_dim(a["dim"], first.rank)
    total = Dim.const(0)
    for i, t in enumerate(ins):
        if t.rank != first.rank:
            raise ShapeError(f"input {i} has rank {t.rank}, input 0 has rank {first.rank}", i)
        for k in range(first.rank):
            if k != d and t.shape[k] != first.shape[k]:
                raise ShapeError(f"inputs differ outside the concat dim {a['dim']}: "
                                 f"{shape_str(first.shape)} vs {shape_str(t.shape)}", i)
        total = total + t.shape[d]
    return [first.with_shape((*first.shape[:d], total, *first.shape[d + 1:]))]


def _broadcast_infer(a: Attrs, ins: Types) -> Types:
    dtypes = {t.dtype for t in ins}
    if len(dtypes) > 1:
        raise ShapeError(f"inputs have different dtypes: {', '.join(sorted(dtypes))}")
    return [ins[0].with_shape(broadcast([t.shape for t in ins]))]


def _true_div_infer(a: Attrs, ins: Types) -> Types:
    """Like PyTorch's `/`: integer inputs give a float result."""
    (out,) = _broadcast_infer(a, ins)
    return [out if out.dtype in FLOAT_DTYPES else TensorType("f32", out.shape)]


def _matmul_infer(a: Attrs, ins: Types) -> Types:
    x, y = ins
    if x.rank < 2 or y.rank < 2:
        raise ShapeError(f"expects two inputs of rank >= 2, got {shape_str(x.shape)} and {shape_str(y.shape)}")
    if x.shape[-1] != y.shape[-2]:
        raise ShapeError(f"inner dims differ: {shape_str(x.shape)} @ {shape_str(y.shape)} "
                         f"(`{x.shape[-1]}` vs `{y.shape[-2]}`)", 1)
    batch = broadcast([x.shape[:-2], y.shape[:-2]])
    return [x.with_shape((*batch, x.shape[-2], y.shape[-1]))]


def _chunk_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    part = x.shape[d].exact_div(a["chunks"])
    if part is None:
        raise ShapeError(f"dimension {a['dim']} of size `{x.shape[d]}` does not split into {a['chunks']} equal chunks")
    return [x.with_shape((*x.shape[:d], part, *x.shape[d + 1:]))] * a["chunks"]


def _split_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    if Dim.const(sum(a["sizes"])) != x.shape[d]:
        raise ShapeError(f"sizes {list(a['sizes'])} add up to {sum(a['sizes'])}, but dimension {a['dim']} has size `{x.shape[d]}`")
    return [x.with_shape((*x.shape[:d], Dim.const(s), *x.shape[d + 1:])) for s in a["sizes"]]


_ELEMENTWISE_RULE = "broadcast(x, y) -> broadcast shape"

register(
    OpDef("concat", (Param("dim", int_(), 1, "int"),), _concat_infer, "concatenate along `dim`",
          "(.., a, ..), (.., b, ..) -> (.., a+b, ..)", "combine", inputs=(2, -1)),
    OpDef("add", (), _broadcast_infer, "element-wise sum of two or more tensors", _ELEMENTWISE_RULE, "combine",
          inputs=(2, -1), elementwise_flops=1),
    OpDef("sub", (), _broadcast_infer, "element-wise x - y", _ELEMENTWISE_RULE, "combine", inputs=(2, 2),
          elementwise_flops=1),
    OpDef("mul", (), _broadcast_infer, "element-wise product of two or more tensors", _ELEMENTWISE_RULE, "combine",
          inputs=(2, -1), elementwise_flops=1),
    OpDef("div", (), _true_div_infer, "element-wise x / y", _ELEMENTWISE_RULE, "combine", inputs=(2, 2),
          elementwise_flops=1),
    OpDef("matmul", (), _matmul_infer, "batched matrix product", "(.., n, k), (.., k, m) -> (.., n, m)", "combine",
          inputs=(2, 2), macs=lambda a, ins, outs: numel(outs[0].shape) * ins[0].shape[-1]),
    OpDef("chunk", (Param("chunks", int_(1), type_name="int"), Param("dim", int_(), 1, "int")), _chunk_infer,
          "split into `chunks` equal parts (several outputs)", "(.., n, ..) -> chunks x (.., n/chunks, ..)", "combine",
          outputs=lambda a, n: a["chunks"]),
    OpDef("split", (Param("sizes", int_list, type_name="[int]"), Param("dim", int_(), 1, "int")), _split_infer,
          "split into parts of the given sizes (several outputs)", "(.., sum(sizes), ..) -> (.., s_i, ..) each",
          "combine", outputs=lambda a, n: len(a["sizes"])),
)


# --- indexing and reductions ----------------------------------------------------------------

def _select_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    size = x.shape[d]
    if size.is_const and not -size.value <= a["index"] < size.value:
        raise ShapeError(f"index {a['index']} is out of range for dimension {a['dim']} of size {size}")
    return [x.with_shape((*x.shape[:d], *x.shape[d + 1:]))]


def _slice_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    size = x.shape[d]
    start, end, step = a["start"], a["end"], a["step"]
    if start < 0 or (end is not None and end < start):
        raise ShapeError("slice needs 0 <= start <= end")
    stop = size if end is None else Dim.const(end)
    if size.is_const and stop.value > size.value:
        stop = size
    length = (stop - start + step - 1) // step
    if length.is_const and length.value <= 0:
        raise ShapeError(f"slice [{start}:{end}] of a dimension of size {size} is empty")
    return [x.with_shape((*x.shape[:d], length, *x.shape[d + 1:]))]


def _reduce_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    dims = {norm_dim(d, x.rank) for d in a["dim"]}
    if len(dims) != len(a["dim"]):
        raise ShapeError(f"dim {list(a['dim'])} names a dimension twice")
    shape = tuple(Dim.const(1) if i in dims else s for i, s in enumerate(x.shape) if a["keepdim"] or i not in dims)
    return [x.with_shape(shape)]


register(
    OpDef("select", (Param("dim", int_(), type_name="int"), Param("index", int_(), type_name="int")), _select_infer,
          "take one index along `dim`, dropping it (BERT's first token: select(1, 0))", "(.., n, ..) -> (.., ..)",
          "indexing"),
    OpDef("slice", (Param("dim", int_(), type_name="int"), Param("start", int_(0), 0, "int"),
                    Param("end", optional(int_(0)), None, "int | none"), Param("step", int_(1), 1, "int")),
          _slice_infer, "a range along `dim`", "(.., n, ..) -> (.., ceil((end-start)/step), ..)", "indexing"),
    OpDef("sum", (Param("dim", int_list, -1, "int | [int]"), Param("keepdim", bool_, False, "bool")), _reduce_infer,
          "sum over dims", "x -> x without dims (or size 1 with keepdim)", "indexing", input_flops=1),
    OpDef("mean", (Param("dim", int_list, -1, "int | [int]"), Param("keepdim", bool_, False, "bool")), _reduce_infer,
          "mean over dims", "x -> x without dims (or size 1 with keepdim)", "indexing", input_flops=1),
)


# --- similarity and sampling ---------------------------------------------------------------

def _cosine_infer(a: Attrs, ins: Types) -> Types:
    shape = broadcast([t.shape for t in ins])
    d = norm_dim(a["dim"], len(shape))
    return [ins[0].with_shape(shape[:d] + shape[d + 1:])]


def _reparam_infer(a: Attrs, ins: Types) -> Types:
    mu, logvar = ins
    need_float(mu)
    if mu.shape != logvar.shape:
        raise ShapeError(f"mu {shape_str(mu.shape)} and logvar {shape_str(logvar.shape)} must have the same shape", 1)
    return [mu]


register(
    OpDef("cosine_similarity", (Param("dim", int_(), 1, "int"), Param("eps", float_, 1e-8, "number")),
          _cosine_infer, "cosine of the angle between x and y along `dim`", "(.., D, ..), (.., D, ..) -> (.., ..)",
          "combine", inputs=(2, 2), macs=lambda a, ins, outs: numel(ins[0].shape) * 3),
    OpDef("reparameterize", (), _reparam_infer,
          "VAE sampling z = mu + exp(logvar/2) * eps, eps ~ N(0, I) (z = mu at inference)",
          "(mu, logvar) -> shape of mu", "generative", inputs=(2, 2), elementwise_flops=3),
)



# --- declared input types of blocks (internal) -------------------------------------------------

def _expect_infer(a: Attrs, ins: Types) -> Types:
    """Checks a tensor against a block's declared input type `f32[B, C, H, W]`."""
    x, dims = ins[0], a["dims"]
    if a["dtype"] is not None and x.dtype != a["dtype"]:
        raise ShapeError(f"`{a['input']}` is declared {a['dtype']} but receives {x.dtype}")
    declared = "[" + ", ".join(str(d) for d in dims) + "]"
    if len(dims) != x.rank:
        raise ShapeError(f"`{a['input']}` is declared with {len(dims)} dims {declared} but receives {shape_str(x.shape)}")
    seen: dict[str, Dim] = {}
    for want, got in zip(dims, x.shape):
        if isinstance(want, int) and got.is_const and got.value != want:
            raise ShapeError(f"`{a['input']}` is declared {declared} but receives {shape_str(x.shape)}")
        if isinstance(want, str) and seen.setdefault(want, got) != got:
            raise ShapeError(f"`{a['input']}` is declared {declared}: `{want}` is both `{seen[want]}` and `{got}`")
    return [x]


register(OpDef("expect", (Param("input", str), Param("dtype", optional(str), None), Param("dims", tuple)),
               _expect_infer, "checks a value against a block input's declared type", "x -> x", "internal"))
