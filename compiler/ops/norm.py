"""Normalization and regularization: batch norm, layer norm, group norm, dropout."""
from __future__ import annotations

from ..ir.dims import Dim
from .table import (Attrs, OpDef, Param, ShapeError, Types, bool_, concrete, float_, int_, need_float, need_rank,
                    prob, register, same)


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


_BN_PARAMS = (Param("eps", float_, 1e-5, "number"), Param("momentum", float_, 0.1, "number"),
              Param("affine", bool_, True, "bool"))

register(
    OpDef("batchnorm1d", _BN_PARAMS, _bn_infer((2, 3), "(B, C) or (B, C, L)"), "batch normalization over (B, C[, L])",
          "(B, C[, L]) -> same", "normalization", weights=_bn_weights, elementwise_flops=2),
    OpDef("batchnorm2d", _BN_PARAMS, _bn_infer((4,), "(B, C, H, W)"), "batch normalization over (B, C, H, W)",
          "(B, C, H, W) -> same", "normalization", weights=_bn_weights, elementwise_flops=2),
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


register(OpDef(
    "layernorm", (Param("eps", float_, 1e-5, "number"), Param("dims", int_(1), 1, "int (trailing dims normalized)"),
                  Param("affine", bool_, True, "bool")),
    _ln_infer, "layer normalization over the last `dims` dimensions", "(..., D) -> same", "normalization",
    weights=_ln_weights, elementwise_flops=5))


def _gn_infer(a: Attrs, ins: Types) -> Types:
    x = ins[0]
    if x.rank < 2:
        raise ShapeError("expects (B, C, ...)")
    c = concrete(x.shape[1], "the channel dimension")
    if c % a["groups"]:
        raise ShapeError(f"groups={a['groups']} must divide the {c} channels")
    return [x]


register(OpDef(
    "groupnorm", (Param("groups", int_(1), type_name="int"), Param("eps", float_, 1e-5, "number")),
    _gn_infer, "group normalization", "(B, C, ...) -> same", "normalization",
    weights=lambda a, ins: [("weight", (ins[0].shape[1],), True), ("bias", (ins[0].shape[1],), True)],
    elementwise_flops=5))

def _dropout2d_infer(a: Attrs, ins: Types) -> Types:
    need_rank(ins[0], (4,), "(B, C, H, W)")
    return [ins[0]]


register(
    OpDef("dropout", (Param("p", prob, 0.5, "number in [0, 1)"),), same,
          "zero elements with probability p while training, scale by 1/(1-p); identity at inference",
          "x -> same", "regularization"),
    OpDef("dropout2d", (Param("p", prob, 0.5, "number in [0, 1)"),), _dropout2d_infer,
          "zero whole channels with probability p while training", "x -> same", "regularization"),
)

