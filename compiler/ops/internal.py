"""Ops the compiler inserts itself: `expect`, a block input's declared type.

Expansion (passes/expand.py) adds an `expect` node where a block is used, to check the value it
receives against the type the block declares for that input (`x: f32[B, C, H, W]`). It computes
nothing: its ONNX form passes the input's name through (no node), and it has no PyTorch form,
because the PyTorch emitter writes blocks from the AST, where the declaration is a signature.
"""
from __future__ import annotations

from ..emit.onnx.context import OnnxContext
from ..ir.dims import Dim, shape_str
from .table import Attrs, OpDef, Param, ShapeError, Types, optional, register


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


def _pass_through(ctx: OnnxContext) -> list[str]:
    return list(ctx.inputs)


register(OpDef(
    "expect", (Param("input", str), Param("dtype", optional(str), None), Param("dims", tuple)),
    _expect_infer, "checks a value against a block input's declared type", "x -> x", "internal",
    onnx=_pass_through))
