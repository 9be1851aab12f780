"""Where each block of a spec was expanded: the data the PyTorch emitter generalizes from.

A block or network definition becomes one Python class; its instances (every place the
expander used it, in every network's graph) tell the emitter which sizes are constant, and
the concrete shapes every stage saw.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ...ir.dims import Dim
from ...ir.graph import BlockCall, Graph, Node
from ...source import Span

DefKey = tuple[str, str]  # (module path, def name)


@dataclass(frozen=True)
class Instance:
    graph: Graph
    path: str  # "" for a network compiled on its own
    call: BlockCall | None  # None for a network compiled on its own

    def input_dims(self) -> list[tuple[Dim, ...]]:
        vids = self.call.inputs if self.call else tuple(v for _, v in self.graph.inputs)
        return [self.graph.values[v].type.shape for v in vids]


class InstanceIndex:
    """Instances of every def, and the op nodes and block calls of every stage execution."""

    def __init__(self, graphs: list[Graph], root: str) -> None:
        self.instances: dict[DefKey, list[Instance]] = defaultdict(list)
        self._ops: dict[tuple[str, str, Span], list[Node]] = defaultdict(list)
        self._calls: dict[tuple[str, str, Span], list[BlockCall]] = defaultdict(list)
        for g in graphs:
            self.instances[(root, g.name)].append(Instance(g, "", None))
            for call in g.calls:
                self.instances[(call.frame.module, call.frame.block)].append(Instance(g, call.frame.path, call))
                self._calls[(g.name, call.parent, call.frame.span)].append(call)
            for node in g.nodes:
                owner = node.trace[-1].path if node.trace else ""
                self._ops[(g.name, owner, node.span)].append(node)

    def op_execs(self, insts: list[Instance], span: Span) -> list[tuple[Instance, Node]]:
        return [(i, n) for i in insts for n in self._ops.get((i.graph.name, i.path, span), [])]

    def call_execs(self, insts: list[Instance], span: Span) -> list[tuple[Instance, BlockCall]]:
        return [(i, c) for i in insts for c in self._calls.get((i.graph.name, i.path, span), [])]
