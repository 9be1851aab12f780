"""The ONNX graph under construction and the context each op converter receives.

Converters (one function per op, in `onnx_ops_*.py`, collected in `onnx_ops.ONNX`) turn one IR
node into ONNX nodes with `onnx.helper`; they never see the rest of the graph. Tensor names are
stable: graph inputs and outputs keep the spec's names, initializers are the compiler's weight
names (the PyTorch `state_dict` keys), node names are the IR node paths.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...ir.graph import Node
from ...ir.types import TensorType

OPSET = 18

ONNX_DTYPES = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "f16": TensorProto.FLOAT16,
               "bf16": TensorProto.BFLOAT16, "i64": TensorProto.INT64, "i32": TensorProto.INT32,
               "u8": TensorProto.UINT8, "bool": TensorProto.BOOL}


class NoOnnxForm(Exception):
    """Raised by a converter when the op, with these attributes or shapes, has no faithful ONNX form."""


@dataclass
class OnnxBuilder:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
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
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = self.fresh(hint)
            self.initializers.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def ints(self, values: list[int] | tuple[int, ...], hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def weight(self, name: str, array: np.ndarray) -> str:
        self.reserve(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
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

    def static(self, input_index: int, dim: int) -> int | None:
        """A dim's size when it is a constant (None when symbolic)."""
        d = self.in_types[input_index].shape[dim]
        return d.value if d.is_const else None

    def transformed_weight(self, local: str, array: np.ndarray, suffix: str) -> str:
        """An initializer derived from a weight (reordered LSTM gates, a masked kernel)."""
        return self.b.const(array.astype(np.float32), f"{self.weights[local]}{suffix}")


Converter = Callable[[OnnxContext], list[str]]
