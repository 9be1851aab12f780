"""Ops the compiler inserts itself: `expect`, a block input's declared type, and `parameter`, a
free parameter tensor.

Expansion (passes/expand.py) adds an `expect` node where a block is used, to check the value it
receives against the type the block declares for that input (`x: f32[B, C, H, W]`). It computes
nothing: its ONNX form passes the input's name through (no node), and it has no PyTorch form,
because the PyTorch emitter writes blocks from the AST, where the declaration is a signature.

A `param` statement (`param cls_token: f32[1, 1, d] = zeros`) becomes a `parameter` node: no
inputs, one output, one weight named as the statement names it in the scope of its block
(`encoder.pos_embedding`). Its ONNX form is that initializer; the PyTorch emitter writes the
statement itself, `self.cls_token = nn.Parameter(torch.zeros(1, 1, d))`. Its initializers
(`zeros`, `ones`, `normal(mean, std)`, `uniform(low, high)`, a number) are `INITIALIZERS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..emit.onnx.context import NUMPY_DTYPES, ONNX_DTYPES, OnnxContext
from ..ir.dims import Dim, shape_str
from ..ir.types import FLOAT_DTYPES, TensorType
from .table import ArgError, Attrs, OpDef, Param, ShapeError, Types, float_, optional, register


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


# --- parameter tensors ------------------------------------------------------------------------------

def _nonnegative(v: Any) -> float:
    v = float_(v)
    if v < 0:
        raise ArgError(f"must be at least 0, got {v}")
    return v


@dataclass(frozen=True)
class Initializer:
    """How a `param` tensor starts: `normal(std=0.02)`. Its arguments are bound and checked like an
    op's (`params`; passes/expand.py), and `check` relates them (uniform's low <= high)."""

    name: str
    params: tuple[Param, ...]
    doc: str
    category: str = "initializer"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def check(self, args: dict[str, Any]) -> tuple[str, str] | None:
        """(argument, problem) when the arguments do not fit together, else None."""
        if self.name == "uniform" and args["low"] > args["high"]:
            return "high", f"must be at least low={args['low']}, got {args['high']}"
        return None


INITIALIZERS = {init.name: init for init in (
    Initializer("zeros", (), "all zeros (the default)"),
    Initializer("ones", (), "all ones"),
    Initializer("normal", (Param("mean", float_, 0.0, "number"), Param("std", _nonnegative, 1.0, "number")),
                "N(mean, std^2)"),
    Initializer("uniform", (Param("low", float_, 0.0, "number"), Param("high", float_, 1.0, "number")),
                "U(low, high)"),
)}
CONSTANT = "constant"  # `= 1e-6`: every entry that number


def _parameter_infer(a: Attrs, ins: Types) -> Types:
    if a["dtype"] not in FLOAT_DTYPES:
        raise ShapeError(f"a parameter tensor must be floating-point ({', '.join(FLOAT_DTYPES)}), got {a['dtype']}")
    return [TensorType(a["dtype"], a["dims"])]


def _parameter_onnx(ctx: OnnxContext) -> list[str]:
    """The initializer itself; cast when the weights given are of another dtype (seeded weights
    are float32)."""
    name, dtype = ctx.weights[ctx.attrs["name"]], ctx.attrs["dtype"]
    if str(ctx.arrays[ctx.attrs["name"]].dtype) == NUMPY_DTYPES.get(dtype):
        return [name]
    return [ctx.b.one("Cast", [name], ctx.hint, to=ONNX_DTYPES[dtype])]


register(OpDef(
    "parameter", (Param("name", str), Param("dtype", str), Param("dims", tuple), Param("init", tuple)),
    _parameter_infer, "a free parameter tensor (`param` statement)", "() -> dims", "internal",
    inputs=(0, 0), weights=lambda a, ins: [(a["name"], a["dims"], True)], onnx=_parameter_onnx))
