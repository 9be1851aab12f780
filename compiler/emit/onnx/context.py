"""The vocabulary ONNX converters are written in: the context a converter receives and the
helpers several converters share.

A converter (`Converter`) turns one IR node into ONNX nodes through `ctx.b`, the graph under
construction (`OnnxBuilder`, builder.py), and returns the ONNX names of the node's outputs; it
never sees the rest of the graph. Each op's converter is the `onnx` field of its `OpDef`, beside
its shape rule in the op's family file (compiler/ops/). A converter raises `NoOnnxForm` when the
op, with these attributes or shapes, has no faithful ONNX form.

The op table imports this module, and the front end (`dlc check`) must load without onnx or
numpy, so neither is imported here: constants are Python values with a numpy dtype name, which
the builder turns into arrays, and the few converters that compute arrays import numpy inside.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ...ir.types import TensorType

if TYPE_CHECKING:
    import numpy as np

    from ...ir.graph import Node
    from .builder import OnnxBuilder

OPSET = 18

# ONNX's TensorProto.DataType codes (fixed by onnx.proto); tests/test_op_registry.py checks them
# against onnx's enum, which this module cannot import.
ONNX_DTYPES = {"f32": 1, "f64": 11, "f16": 10, "bf16": 16, "i64": 7, "i32": 6, "u8": 2, "bool": 9}

# The numpy dtype of each IR dtype that numpy has (bf16 has none).
NUMPY_DTYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "i64": "int64", "i32": "int32",
                "u8": "uint8", "bool": "bool"}


class NoOnnxForm(Exception):
    """Raised by a converter when the op, with these attributes or shapes, has no faithful ONNX form."""


@dataclass
class OnnxContext:
    """What a converter knows about the IR node it converts."""

    b: OnnxBuilder
    node: Node
    attrs: dict[str, Any]
    inputs: list[str]  # ONNX names of the input tensors
    in_types: list[TensorType]
    out_types: list[TensorType]
    weights: dict[str, str]  # the op's local weight name ("weight", "q_proj.bias") -> initializer name
    arrays: dict[str, np.ndarray]  # the same weights' values, for converters that must transform them

    @property
    def hint(self) -> str:
        return self.node.path

    @property
    def x(self) -> str:
        """The first input's ONNX name."""
        return self.inputs[0]

    def rank(self, input_index: int = 0) -> int:
        return self.in_types[input_index].rank

    def axis(self, dim: int, rank: int | None = None) -> int:
        """A dim attr (negative counts from the end) as an ONNX axis of input 0, or of `rank` dims."""
        return dim % (self.rank() if rank is None else rank)

    def static(self, input_index: int, dim: int) -> int | None:
        """A dim's size when it is a constant (None when symbolic)."""
        d = self.in_types[input_index].shape[dim]
        return d.value if d.is_const else None

    def transformed_weight(self, local: str, array: np.ndarray, suffix: str) -> str:
        """An initializer derived from a weight (reordered LSTM gates, a masked kernel)."""
        return self.b.const(array.astype("float32", copy=False), f"{self.weights[local]}{suffix}")


Converter = Callable[[OnnxContext], list[str]]


# --- helpers shared by converters ----------------------------------------------------------------

def scalar(ctx: OnnxContext, value: float, hint: str, like: int = 0) -> str:
    """A scalar constant in the dtype of input `like` (CastLike where numpy has no such dtype)."""
    dtype = ctx.in_types[like].dtype
    if dtype in NUMPY_DTYPES:
        return ctx.b.const(value, hint, NUMPY_DTYPES[dtype])
    c = ctx.b.const(value, hint, "float32")
    return ctx.b.one("CastLike", [c, ctx.inputs[like]], f"{ctx.hint}/{hint}")


def filled(ctx: OnnxContext, value: float, shape: tuple[int, ...], hint: str) -> str:
    """A constant tensor of `shape` filled with `value`, in input 0's float dtype."""
    dtype = ctx.in_types[0].dtype
    if dtype in NUMPY_DTYPES:
        return ctx.b.full(shape, value, NUMPY_DTYPES[dtype], hint)
    c = ctx.b.full(shape, value, "float32", hint)
    return ctx.b.one("CastLike", [c, ctx.inputs[0]], f"{ctx.hint}/{hint}")


def unary(op_type: str, **attrs: Any) -> Converter:
    """The converter that is one ONNX `op_type` node on the first input."""
    def convert(ctx: OnnxContext) -> list[str]:
        return [ctx.b.one(op_type, [ctx.x], ctx.hint, **attrs)]
    return convert


def binary(op_type: str) -> Converter:
    """The converter that is one ONNX `op_type` node on all inputs."""
    def convert(ctx: OnnxContext) -> list[str]:
        return [ctx.b.one(op_type, list(ctx.inputs), ctx.hint)]
    return convert


def identity(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Identity", [ctx.x], ctx.hint)]


def reshape_range(ctx: OnnxContext, x: str, start: int, end: int, sizes: list[int], hint: str) -> str:
    """Replace dims start..end of x (shaped like input 0) by `sizes` (literals, one may be -1).

    A constant target: dims before `start` as 0 (copy), the others as their static sizes, a single
    remaining symbolic dim as -1. When dims after `end` are symbolic too, they are first moved in
    front of the replaced range (Transpose), copied as 0, and moved back, so that every size stays
    visible to ONNX shape inference (no target assembled from Shape at run time)."""
    rank = ctx.rank()
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
