"""The graph IR: a network after block expansion, as frozen nodes in topological order.

Values are numbered; a node reads and writes value ids. Every node keeps its source span
and the chain of block instantiations that produced it, so diagnostics can point at both
the op and the place the enclosing block was used. Passes return new graphs
(`dataclasses.replace`); none mutates the graph it was given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..source import Span
from .types import TensorType


@dataclass(frozen=True, slots=True)
class Frame:
    """One block instantiation on the way to a node: which block, used where."""

    block: str
    module: str  # the file that defines the block
    path: str
    span: Span


@dataclass(frozen=True, slots=True)
class BlockCall:
    """One expanded instance of a block or network: its arguments and boundary tensors."""

    frame: Frame
    parent: str  # path of the instance whose body made this call ("" for the network itself)
    args: tuple[tuple[str, Any], ...]  # evaluated parameters; layer values appear as `Layer` objects
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Value:
    id: int
    name: str | None  # the spec's binding name, when the tensor was bound to one
    type: TensorType | None  # None until shape inference, or after an error
    producer: int | None  # node id; None for graph inputs
    span: Span


@dataclass(frozen=True, slots=True)
class Node:
    id: int
    op: str
    attrs: tuple[tuple[str, Any], ...]  # sorted by name, values hashable
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    path: str  # unique dotted name, e.g. "layer1.0.conv1"
    weight_scope: str  # where its weights live; differs from `path` for a shared layer's reuse
    ties: tuple[tuple[str, str], ...]  # (local weight name, full name of the weight it reuses)
    span: Span
    trace: tuple[Frame, ...]

    @property
    def attr(self) -> dict[str, Any]:
        return dict(self.attrs)


@dataclass(frozen=True, slots=True)
class Weight:
    """One parameter or buffer tensor, named as in a PyTorch `state_dict`."""

    name: str
    shape: tuple[int, ...]
    trainable: bool
    owner: int  # node id that created it


@dataclass(frozen=True, slots=True)
class Graph:
    name: str
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]
    nodes: tuple[Node, ...]
    values: tuple[Value, ...]
    dim_examples: tuple[tuple[str, int], ...]  # sizes used for reports, e.g. (("B", 1), ("H", 224))
    span: Span
    calls: tuple[BlockCall, ...] = ()  # block instances, in the order their expansion finished
    weights: tuple[Weight, ...] = ()  # filled by the `params` pass
    params: tuple[tuple[str, Any], ...] = ()  # the network's parameter values it was expanded with

    def value(self, vid: int) -> Value:
        return self.values[vid]

    def type_of(self, vid: int) -> TensorType | None:
        return self.values[vid].type

    def producer_span(self, vid: int) -> Span:
        return self.values[vid].span
