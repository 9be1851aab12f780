"""The ONNX emitter: an opset-18 model built from the graph IR with `onnx.helper`, not traced.

    model.py    `emit_onnx` (a ModelProto), `build_onnx` (the same with its weights still arrays):
                graph inputs, one converter call per IR node, outputs
    stream.py   `OnnxModel` and `save_onnx`: a file written straight from the arrays, the weights
                held once (protobuf written in pieces; external data past 2 GiB)
    builder.py  `OnnxBuilder`: the nodes and initializers under construction, with stable names
    context.py  the vocabulary converters are written in: `OnnxContext`, `NoOnnxForm`, shared helpers

The converters themselves are not here: each op's is the `onnx` field of its `OpDef`, beside its
shape rule in compiler/ops/<family>.py. The op table imports context.py, so this package loads
`model.py` (and with it onnx and numpy) only when one of the names below is first used.
"""
from __future__ import annotations

from typing import Any

__all__ = ["OnnxModel", "build_onnx", "emit_onnx", "save_onnx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
