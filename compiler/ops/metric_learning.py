"""Metric learning for Siamese networks: the distance of two embeddings, the pair losses, and a
verification metric.

A Siamese network scores a pair (x1, x2): a Euclidean distance d (small for a same-class pair)
or a similarity s (a cosine, or Koch et al.'s probability; large for a same-class pair). The
label `same` is f32, 1.0 for a same-class pair and 0.0 for a different one, of the score's shape,
so the losses are products with it and need no cast:

  - `contrastive` (Hadsell, Chopra & LeCun 2006), on distances:
        mean( y d² + (1 - y) max(0, m - d)² )
    same pairs are pulled together, different pairs pushed out to the margin m and then left alone;
  - `cosine_embedding`, on cosine similarities (PyTorch's CosineEmbeddingLoss with y = 2 same - 1):
        mean( y (1 - s) + (1 - y) max(0, s - m) );
  - `verification_accuracy`, the fraction of pairs decided right when "same" means a score above
    `threshold` (`same_if="above"`, similarities) or below it (`same_if="below"`, distances).
    The threshold that is best on the validation pairs is what `show verification(net)` measures
    (runtime/train/measures/pairs.py).

`pair_distance` is an inference op with an ONNX form (Sub, Add, ReduceL2); the losses and the
metric are training objectives and have none (NoOnnxForm), as in compiler/ops/loss.py.
"""
from __future__ import annotations

from typing import Callable

from ..emit.onnx.context import NoOnnxForm, OnnxContext, scalar
from ..emit.torch.forms import OpSource, _atom, _const, _join, _multi, _tidy
from ..ir.dims import numel
from ..ir.types import FLOAT_DTYPES, TensorType
from .table import Attrs, OpDef, Param, ShapeError, Types, choice, float_, int_, norm_dim, register, shapes_differ

SAME_IF = ("above", "below")  # verification: a pair is "same" when its score is above / below the threshold


# --- shape rules -------------------------------------------------------------------------------------

def _same_float_shape(first: TensorType, second: TensorType, names: tuple[str, str]) -> None:
    """Two float inputs of one dtype and exactly one shape (no broadcasting)."""
    for index, (t, name) in enumerate(zip((first, second), names, strict=True)):
        if t.dtype not in FLOAT_DTYPES:
            raise ShapeError(f"expects a floating-point {name}, got {t}", index)
    if shapes_differ(first.shape, second.shape):
        raise ShapeError(f"{names[0]} {first} and {names[1]} {second} must have the same shape", 1)
    if first.dtype != second.dtype:
        raise ShapeError(f"{names[0]} {first} and {names[1]} {second} must have the same dtype", 1)


def _distance_infer(a: Attrs, ins: Types) -> Types:
    x, y = ins
    _same_float_shape(x, y, ("x", "y"))
    if x.rank < 1:
        raise ShapeError(f"expects embeddings with a feature dim, got {x}", 0)
    d = norm_dim(a["dim"], x.rank)
    return [x.with_shape(x.shape[:d] + x.shape[d + 1:])]


def _pair_score_infer(what: str) -> Callable[[Attrs, Types], Types]:
    def infer(a: Attrs, ins: Types) -> Types:
        score, same = ins
        _same_float_shape(score, same, (what, "label `same`"))
        if score.rank == 0:
            raise ShapeError(f"expects one {what} per pair (B,), got a scalar {score}", 0)
        return [TensorType(score.dtype, ())]
    return infer


def _accuracy_infer(a: Attrs, ins: Types) -> Types:
    _pair_score_infer("score")(a, ins)
    return [TensorType("f32", ())]  # `.float().mean()`


# --- PyTorch forms -------------------------------------------------------------------------------------

def _distance_torch(src: OpSource, xs: list[str]) -> str:
    """As F.pairwise_distance: the norm of x - y + eps (eps keeps the gradient finite at x == y)."""
    x, y = xs
    diff = _join("+", [_join("-", [x, y]), _tidy(src.attrs["eps"])])
    return f"torch.linalg.vector_norm({diff}, dim={_tidy(src.attrs['dim'])})"


def _contrastive_torch(src: OpSource, xs: list[str]) -> str:
    d, y = (_atom(x) for x in xs)
    margin = _tidy(src.attrs["margin"])
    return f"torch.mean({y} * {d}.pow(2) + (1 - {y}) * F.relu({_join('-', [margin, d])}).pow(2))"


def _cosine_embedding_torch(src: OpSource, xs: list[str]) -> str:
    s, y = (_atom(x) for x in xs)
    margin = _tidy(src.attrs["margin"])
    return f"torch.mean({y} * (1 - {s}) + (1 - {y}) * F.relu({_join('-', [s, margin])}))"


def _accuracy_torch(src: OpSource, xs: list[str]) -> str:
    score, y = (_atom(x) for x in xs)
    compare = ">" if _const(src, "same_if") == "above" else "<"
    return f"(({score} {compare} {_tidy(src.attrs['threshold'])}) == ({y} > 0.5)).float().mean()"


# --- ONNX forms ----------------------------------------------------------------------------------------

def _distance_onnx(ctx: OnnxContext) -> list[str]:
    """||x - y + eps||_2 along `dim`, as the PyTorch form."""
    b, h = ctx.b, ctx.hint
    x, y = ctx.inputs
    diff = b.one("Sub", [x, y], f"{h}/diff")
    shifted = b.one("Add", [diff, scalar(ctx, ctx.attrs["eps"], "eps")], f"{h}/shifted")
    axes = b.ints([ctx.attrs["dim"] % ctx.in_types[0].rank], "axes")
    return [b.one("ReduceL2", [shifted, axes], h, keepdims=0)]


def _training_only(ctx: OnnxContext) -> list[str]:
    raise NoOnnxForm("it is a training objective, and the ONNX export is the inference graph")


# --- the table -----------------------------------------------------------------------------------------

_MARGIN = "number"
_PAIR_RULE = "(B, ..), (B, ..) f32 same -> ()"

register(
    OpDef("pair_distance", (Param("dim", int_(), 1, "int"), Param("eps", float_, 1e-6, "number")), _distance_infer,
          "Euclidean distance ||x - y + eps|| of two embeddings along `dim` (F.pairwise_distance): a "
          "Siamese network's score for `contrastive`",
          "(.., D, ..), (.., D, ..) -> (.., ..)", "combine", inputs=(2, 2),
          macs=lambda a, ins, outs: numel(ins[0].shape), input_flops=1,
          torch=_multi(_distance_torch), onnx=_distance_onnx),
    OpDef("contrastive", (Param("margin", float_, 1.0, _MARGIN),), _pair_score_infer("distance"),
          "contrastive loss of Hadsell et al. on distances d and labels `same` y (1 same, 0 different): "
          "mean(y d² + (1 - y) max(0, margin - d)²)",
          _PAIR_RULE, "loss", inputs=(2, 2), input_flops=3, torch=_multi(_contrastive_torch), onnx=_training_only),
    OpDef("cosine_embedding", (Param("margin", float_, 0.0, _MARGIN),), _pair_score_infer("similarity"),
          "cosine embedding loss on similarities s and labels `same` y (1 same, 0 different): "
          "mean(y (1 - s) + (1 - y) max(0, s - margin))",
          _PAIR_RULE, "loss", inputs=(2, 2), input_flops=3, torch=_multi(_cosine_embedding_torch),
          onnx=_training_only),
    OpDef("verification_accuracy", (Param("threshold", float_, 0.5, "number"),
                                    Param("same_if", choice(*SAME_IF), "above", '"above" | "below"')),
          _accuracy_infer,
          "fraction of pairs whose score is above (`same_if=\"above\"`: similarities) or below (`\"below\"`: "
          "distances) `threshold` exactly when `same` is 1",
          "(B, ..), (B, ..) f32 same -> () f32", "loss", inputs=(2, 2), input_flops=2,
          torch=_multi(_accuracy_torch), onnx=_training_only),
)


# --- which way a pair score points -------------------------------------------------------------------

DISTANCE, SIMILARITY = "distance", "similarity"
SCORE_OPS = {"pair_distance": DISTANCE, "cosine_similarity": SIMILARITY, "sigmoid": SIMILARITY}
"""Ops whose output is a pair score of a known direction: small for same pairs, or large."""
PASSING_OPS = ("identity", "squeeze", "unsqueeze", "reshape", "flatten")  # keep a score's meaning
WANTS = {"contrastive": DISTANCE, "cosine_embedding": SIMILARITY}  # the score each loss takes


def score_kind(graph, vid: int) -> tuple[str, object] | None:
    """(DISTANCE or SIMILARITY, the node that makes it) for a value computed from a pair score
    through shape-only ops; None when its direction is not known (any other op)."""
    while True:
        producer = graph.value(vid).producer
        if producer is None:
            return None
        node = graph.nodes[producer]
        if node.op in SCORE_OPS:
            return SCORE_OPS[node.op], node
        if node.op not in PASSING_OPS or not node.inputs:
            return None
        vid = node.inputs[0]


def same_if(kind: str) -> str:
    """Where a pair of this kind of score counts as "same": below a threshold, or above it."""
    return "below" if kind == DISTANCE else "above"
