"""Weights: name, shape and sharing of every parameter and buffer.

Assumes: a shape-inferred graph.
Guarantees: `Graph.weights` lists each weight once, in creation order, named
`<weight scope>.<local name>` exactly as a PyTorch `state_dict` key (a parameter tensor's scope
is its block's, so at top level it is its name alone, `cls_token`); a shared layer's
later applications and `tie=` reuse the first tensor, whose shape must match (E0403);
a weight shape must be fixed (E0406). Nodes whose types shape inference could not compute
(it reported why) create no weights.
"""
from __future__ import annotations

from dataclasses import replace

from .. import messages
from ..diagnostics import Diagnostics
from ..ir.dims import shape_str
from ..ir.graph import Graph, Weight
from ..ops import OPS
from .values import join


def collect_weights(graph: Graph, diags: Diagnostics) -> Graph:
    weights: dict[str, Weight] = {}
    first_span = {}
    for node in graph.nodes:
        ins = [graph.values[v].type for v in node.inputs]
        if any(graph.values[v].type is None for v in (*node.inputs, *node.outputs)):
            continue  # shape inference failed here or upstream, and said so
        ties = dict(node.ties)
        for local, shape, trainable in OPS[node.op].weights(node.attr, ins):
            name = ties.get(local, join(node.weight_scope, local))
            if any(not d.is_const for d in shape):
                diags.add(messages.symbolic_weight(node.span, node.op, local, shape_str(shape)))
                continue
            dims = tuple(d.value for d in shape)
            if name in weights:
                if weights[name].shape != dims:
                    diags.add(messages.shared_shape_mismatch(node.span, name, str(weights[name].shape), str(dims),
                                                             first_span[name], local in ties))
                continue
            weights[name] = Weight(name, dims, trainable, node.id)
            first_span[name] = node.span
    return replace(graph, weights=tuple(weights.values()))
