"""The ONNX graph under construction: nodes and initializers, with stable, unique names.

Converters (one per op, written in context.py's vocabulary) add nodes through it, and it builds
them with `onnx.helper`. Tensor names are stable: graph inputs and outputs keep the spec's names,
initializers are the compiler's weight names (the PyTorch `state_dict` keys), node names are the
IR node paths. Initializers stay numpy arrays (the weights themselves, not copies): they become
protobuf bytes only when the model is written (stream.py) or asked for whole (`to_proto`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper


@dataclass
class OnnxBuilder:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # initializer name -> value, in order
    _names: set[str] = field(default_factory=set)
    _consts: dict[tuple, str] = field(default_factory=dict)

    def fresh(self, hint: str) -> str:
        """A value name not used before: `hint`, `hint_1`, `hint_2`, ..."""
        name, k = hint, 0
        while name in self._names:
            k += 1
            name = f"{hint}_{k}"
        self._names.add(name)
        return name

    def reserve(self, name: str) -> str:
        self._names.add(name)
        return name

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """An initializer holding `value` (deduplicated by content), e.g. a Reshape target shape."""
        array = np.asarray(value, dtype=dtype, order="C")
        # the content's digest, not its bytes: a transformed weight (LSTM gates) is as large as one
        key = (array.dtype.str, array.shape, hashlib.sha256(array.reshape(-1).view(np.uint8)).digest())
        if key not in self._consts:
            name = self.fresh(hint)
            self.arrays[name] = array
            self._consts[key] = name
        return self._consts[key]

    def full(self, shape: tuple[int, ...], value: Any, dtype: str, hint: str) -> str:
        """A constant tensor of `shape` filled with `value` (deduplicated like `const`)."""
        return self.const(np.full(shape, value, dtype=dtype), hint)

    def ints(self, values: list[int] | tuple[int, ...], hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def weight(self, name: str, array: np.ndarray) -> str:
        self.reserve(name)
        self.arrays[name] = np.ascontiguousarray(array)  # the caller's array itself when contiguous
        return name

    def node(self, op_type: str, inputs: list[str], hint: str, n_out: int = 1, domain: str = "",
             **attrs: Any) -> list[str]:
        """Append one ONNX node; returns its output names (fresh, derived from `hint`)."""
        outputs = [self.fresh(hint if n_out == 1 else f"{hint}_{i}") for i in range(n_out)]
        attrs = {k: v for k, v in sorted(attrs.items()) if v is not None}
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(f"{hint}/{op_type}"),
                                           domain=domain or None, **attrs))
        return outputs

    def one(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        return self.node(op_type, inputs, hint, 1, **attrs)[0]
