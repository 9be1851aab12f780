"""Cost accounting: parameters, MACs, FLOPs and activation memory per layer.

Assumes: a graph with types and weights.
Guarantees: one `LayerCost` per node with a typed output, in graph order, and totals.
Parameters are counted where they are created (a shared or tied weight counts once).
FLOPs = 2 x MACs for multiply-accumulate ops plus the op's per-element work; dims are
evaluated with the graph's example sizes (B=1 unless the spec or caller says otherwise);
a dim that has neither raises `SizeError` naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Mapping

from ..ir.dims import Dim, shape_str
from ..ir.graph import Graph
from ..ir.types import DTYPE_BYTES
from ..ops import OPS
from ..sizes import unbound


@dataclass(frozen=True)
class LayerCost:
    path: str
    op: str
    shapes: tuple[str, ...]  # symbolic output shapes
    concrete: tuple[tuple[int, ...], ...]  # output shapes at the example sizes
    params: int
    macs: int
    flops: int
    activation_bytes: int
    depth: int


@dataclass(frozen=True)
class CostReport:
    layers: tuple[LayerCost, ...]
    total_params: int
    trainable_params: int
    buffers: int
    macs: int
    flops: int
    activation_bytes: int
    param_bytes: int
    dims: tuple[tuple[str, int], ...]


def count_costs(graph: Graph, dims: Mapping[str, int] | None = None) -> CostReport:
    """Costs at the sizes `dims` gives, else the spec's examples; SizeError for a dim without either."""
    env = {**dict(graph.dim_examples), **(dims or {})}
    missing = {s for v in graph.values if v.type is not None for d in v.type.shape for s in d.symbols()} - set(env)
    if missing:
        raise unbound(graph, missing)
    owned: dict[int, list] = {}
    for w in graph.weights:
        owned.setdefault(w.owner, []).append(w)
    rows = []
    for node in graph.nodes:
        if node.op == "expect":
            continue
        ins = [graph.values[v].type for v in node.inputs]
        outs = [graph.values[v].type for v in node.outputs]
        if any(t is None for t in ins + outs):
            continue
        op = OPS[node.op]
        mine = owned.get(node.id, [])
        concrete = tuple(tuple(_eval(d, env) for d in t.shape) for t in outs)
        rows.append(LayerCost(
            node.path, node.op, tuple(shape_str(t.shape) for t in outs), concrete,
            sum(prod(w.shape) for w in mine if w.trainable),
            _eval(op.macs(node.attr, ins, outs), env), _eval(op.flops(node.attr, ins, outs), env),
            sum(prod(s) * DTYPE_BYTES[t.dtype] for s, t in zip(concrete, outs)),
            node.path.count(".")))
    trainable = sum(prod(w.shape) for w in graph.weights if w.trainable)
    return CostReport(tuple(rows), trainable, trainable,
                      sum(prod(w.shape) for w in graph.weights if not w.trainable),
                      sum(r.macs for r in rows), sum(r.flops for r in rows),
                      sum(r.activation_bytes for r in rows), 4 * sum(prod(w.shape) for w in graph.weights),
                      tuple(sorted(env.items())))


def _eval(d: Dim, env: Mapping[str, int]) -> int:
    return d.evaluate(env)  # every symbol of every shape has a size (checked above)
