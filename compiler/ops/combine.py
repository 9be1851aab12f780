"""Combining and splitting tensors: concat, element-wise arithmetic with broadcasting, matmul,
chunk, split, cosine similarity.

PyTorch forms are expressions (`torch.cat([a, b], dim=1)`, `a + b + c`, `h.chunk(2, dim=-1)`);
several-input ops have no module. ONNX forms evaluate in PyTorch's order (`a + b + c` left to
right), so that results round the same way.
"""
from __future__ import annotations

from ..emit.onnx.context import Converter, NoOnnxForm, OnnxContext, binary, scalar
from ..emit.torch.forms import (TorchEntry, _call, _join, _kw,
                                _method, _multi, _tidy)
from ..ir.dims import Dim, numel, shape_str
from ..ir.types import FLOAT_DTYPES, TensorType
from .table import (Attrs, OpDef, Param, ShapeError, Types, broadcast, differ, exactly, float_, int_,
                    int_list, norm_dim, register)


# --- concat -------------------------------------------------------------------------------------

def _concat_infer(a: Attrs, ins: Types) -> Types:
    first = ins[0]
    d = norm_dim(a["dim"], first.rank)
    total = Dim.const(0)
    for i, t in enumerate(ins):
        if t.rank != first.rank:
            raise ShapeError(f"input {i} has rank {t.rank}, input 0 has rank {first.rank}", i)
        for k in range(first.rank):
            if k != d and differ(t.shape[k], first.shape[k]):
                raise ShapeError(f"inputs differ outside the concat dim {a['dim']}: "
                                 f"{shape_str(first.shape)} vs {shape_str(t.shape)}", i)
        total = total + t.shape[d]
    return [first.with_shape((*first.shape[:d], total, *first.shape[d + 1:]))]


def _concat_onnx(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Concat", list(ctx.inputs), ctx.hint, axis=ctx.axis(ctx.attrs["dim"]))]


register(OpDef(
    "concat", (Param("dim", int_(), 1, "int"),), _concat_infer, "concatenate along `dim`",
    "(.., a, ..), (.., b, ..) -> (.., a+b, ..)", "combine", inputs=(2, -1),
    torch=_multi(lambda s, xs: _call("torch.cat", [f"[{', '.join(xs)}]", _kw(s, "dim", 0)])),
    onnx=_concat_onnx))


# --- element-wise arithmetic and matmul ---------------------------------------------------------------

def _broadcast_infer(a: Attrs, ins: Types) -> Types:
    dtypes = {t.dtype for t in ins}
    if len(dtypes) > 1:
        raise ShapeError(f"inputs have different dtypes: {', '.join(sorted(dtypes))}")
    return [ins[0].with_shape(broadcast([t.shape for t in ins]))]


def _true_div_infer(a: Attrs, ins: Types) -> Types:
    """Like PyTorch's `/`: integer inputs give a float result."""
    (out,) = _broadcast_infer(a, ins)
    return [out if out.dtype in FLOAT_DTYPES else TensorType("f32", out.shape)]


def _chain_onnx(op_type: str) -> Converter:
    """Left to right, as PyTorch's `a + b + c` evaluates (the same rounding)."""
    def convert(ctx: OnnxContext) -> list[str]:
        y = ctx.inputs[0]
        for k, other in enumerate(ctx.inputs[1:], start=2):
            y = ctx.b.one(op_type, [y, other], ctx.hint if k == len(ctx.inputs) else f"{ctx.hint}/{k}")
        return [y]
    return convert


def _div_onnx(ctx: OnnxContext) -> list[str]:
    if any(t.dtype not in FLOAT_DTYPES for t in ctx.in_types):
        raise NoOnnxForm("PyTorch's `/` is true division (a float result); ONNX Div of integers truncates")
    return binary("Div")(ctx)


def _operator(symbol: str) -> TorchEntry:
    """`a <symbol> b <symbol> ...` with the parentheses Python needs."""
    return _multi(lambda s, xs: _join(symbol, xs))


def _matmul_infer(a: Attrs, ins: Types) -> Types:
    x, y = ins
    if x.rank < 2 or y.rank < 2:
        raise ShapeError(f"expects two inputs of rank >= 2, got {shape_str(x.shape)} and {shape_str(y.shape)}")
    if differ(x.shape[-1], y.shape[-2]):
        raise ShapeError(f"inner dims differ: {shape_str(x.shape)} @ {shape_str(y.shape)} "
                         f"(`{x.shape[-1]}` vs `{y.shape[-2]}`)", 1)
    batch = broadcast([x.shape[:-2], y.shape[:-2]])
    return [x.with_shape((*batch, x.shape[-2], y.shape[-1]))]


_ELEMENTWISE_RULE = "broadcast(x, y) -> broadcast shape"

register(
    OpDef("add", (), _broadcast_infer, "element-wise sum of two or more tensors", _ELEMENTWISE_RULE, "combine",
          inputs=(2, -1), elementwise_flops=1, torch=_operator("+"), onnx=_chain_onnx("Add")),
    OpDef("sub", (), _broadcast_infer, "element-wise x - y", _ELEMENTWISE_RULE, "combine", inputs=(2, 2),
          elementwise_flops=1, torch=_operator("-"), onnx=binary("Sub")),
    OpDef("mul", (), _broadcast_infer, "element-wise product of two or more tensors", _ELEMENTWISE_RULE, "combine",
          inputs=(2, -1), elementwise_flops=1, torch=_operator("*"), onnx=_chain_onnx("Mul")),
    OpDef("div", (), _true_div_infer, "element-wise x / y", _ELEMENTWISE_RULE, "combine", inputs=(2, 2),
          elementwise_flops=1, torch=_operator("/"), onnx=_div_onnx),
    OpDef("matmul", (), _matmul_infer, "batched matrix product", "(.., n, k), (.., k, m) -> (.., n, m)", "combine",
          inputs=(2, 2), macs=lambda a, ins, outs: numel(outs[0].shape) * ins[0].shape[-1],
          torch=_multi(lambda s, xs: _join("@", xs)), onnx=binary("MatMul")),
)


# --- chunk, split -------------------------------------------------------------------------------

def _chunk_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    part = exactly(x.shape[d], a["chunks"])
    if part is None:
        raise ShapeError(f"dimension {a['dim']} of size `{x.shape[d]}` does not split into {a['chunks']} equal chunks")
    return [x.with_shape((*x.shape[:d], part, *x.shape[d + 1:]))] * a["chunks"]


def _split_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    d = norm_dim(a["dim"], x.rank)
    if differ(Dim.of(sum(a["sizes"])), x.shape[d]):
        raise ShapeError(f"sizes {list(a['sizes'])} add up to {sum(a['sizes'])}, but dimension {a['dim']} has size `{x.shape[d]}`")
    return [x.with_shape((*x.shape[:d], Dim.of(s), *x.shape[d + 1:])) for s in a["sizes"]]


def _chunk_onnx(ctx: OnnxContext) -> list[str]:
    d, chunks = ctx.axis(ctx.attrs["dim"]), ctx.attrs["chunks"]
    size = ctx.static(0, d)
    if size is None:
        return ctx.b.node("Split", [ctx.x], ctx.hint, chunks, axis=d, num_outputs=chunks)
    split = ctx.b.ints([size // chunks] * chunks, "split")
    return ctx.b.node("Split", [ctx.x, split], ctx.hint, chunks, axis=d)


def _split_onnx(ctx: OnnxContext) -> list[str]:
    sizes = list(ctx.attrs["sizes"])
    return ctx.b.node("Split", [ctx.x, ctx.b.ints(sizes, "split")], ctx.hint, len(sizes),
                      axis=ctx.axis(ctx.attrs["dim"]))


register(
    OpDef("chunk", (Param("chunks", int_(1), type_name="int"), Param("dim", int_(), 1, "int")), _chunk_infer,
          "split into `chunks` equal parts (several outputs)", "(.., n, ..) -> chunks x (.., n/chunks, ..)", "combine",
          outputs=lambda a, n: a["chunks"],
          torch=_method("Chunk", "chunk", lambda s: [_tidy(s.attrs["chunks"]), _kw(s, "dim", 1)],
                        lambda s: [_tidy(s.attrs["chunks"]), _kw(s, "dim", 0)]),
          onnx=_chunk_onnx),
    OpDef("split", (Param("sizes", int_list, type_name="[int]"), Param("dim", int_(), 1, "int")), _split_infer,
          "split into parts of the given sizes (several outputs)", "(.., sum(sizes), ..) -> (.., s_i, ..) each",
          "combine", outputs=lambda a, n: len(a["sizes"]),
          torch=_method("Split", "split", lambda s: [_tidy(s.attrs["sizes"]), _kw(s, "dim", 1)],
                        lambda s: [_tidy(s.attrs["sizes"]), _kw(s, "dim", 0)]),
          onnx=_split_onnx),
)


# --- cosine similarity --------------------------------------------------------------------------

def _cosine_infer(a: Attrs, ins: Types) -> Types:
    shape = broadcast([t.shape for t in ins])
    d = norm_dim(a["dim"], len(shape))
    return [ins[0].with_shape(shape[:d] + shape[d + 1:])]


def _cosine_onnx(ctx: OnnxContext) -> list[str]:
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
    eps = scalar(ctx, ctx.attrs["eps"], "eps")

    def unit(v: str, name: str) -> str:
        norm = b.one("ReduceL2", [v, axes], f"{h}/{name}_norm", keepdims=1)
        return b.one("Div", [v, b.one("Max", [norm, eps], f"{h}/{name}_clamped")], f"{h}/{name}_unit")

    prod = b.one("Mul", [unit(x, "x"), unit(y, "y")], f"{h}/product")
    return [b.one("ReduceSum", [prod, axes], h, keepdims=0)]


register(OpDef(
    "cosine_similarity", (Param("dim", int_(), 1, "int"), Param("eps", float_, 1e-8, "number")),
    _cosine_infer, "cosine of the angle between x and y along `dim`", "(.., D, ..), (.., D, ..) -> (.., ..)",
    "combine", inputs=(2, 2), macs=lambda a, ins, outs: numel(ins[0].shape) * 3,
    torch=_multi(lambda s, xs: _call("F.cosine_similarity", [*xs, _kw(s, "dim", 1), _kw(s, "eps", 1e-8)])),
    onnx=_cosine_onnx))
