"""ONNX converters for convolution, pooling, normalization, activations and tensor ops."""
from __future__ import annotations

from .onnx_builder import Converter, OnnxContext


def _relu(ctx: OnnxContext) -> list[str]:
    return [ctx.b.one("Relu", ctx.inputs, ctx.hint)]


def _linear(ctx: OnnxContext) -> list[str]:
    w = ctx.b.one("Transpose", [ctx.weights["weight"]], f"{ctx.hint}/weight_t", perm=[1, 0])
    y = ctx.b.one("MatMul", [ctx.inputs[0], w], ctx.hint)
    if "bias" in ctx.weights:
        y = ctx.b.one("Add", [y, ctx.weights["bias"]], ctx.hint)
    return [y]


CONVERTERS: dict[str, Converter] = {"relu": _relu, "linear": _linear}
