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

from math import prod

from .. import limits, messages
from ..diagnostics import Diagnostics
from ..ir.dims import shape_str
from ..ir.graph import Graph, Weight
from ..ops import OPS, ShapeError
from .infer_shapes import rule_diagnostic
from .values import join


def collect_weights(graph: Graph, diags: Diagnostics) -> Graph:
    weights: dict[str, Weight] = {}
    first_span = {}
    total = 0
    for node in graph.nodes:
        ins = [graph.values[v].type for v in node.inputs]
        if any(graph.values[v].type is None for v in (*node.inputs, *node.outputs)):
            continue  # shape inference failed here or upstream, and said so
        ties = dict(node.ties)
        op = OPS[node.op]
        outs = [graph.values[v].type for v in node.outputs]
        try:  # the op's weight and cost rules, once here: a rule that rejects its inputs is a located error
            specs = op.weights(node.attr, ins)
            op.macs(node.attr, ins, outs)
            op.flops(node.attr, ins, outs)
        except ShapeError as err:
            diags.add(rule_diagnostic(graph, node, graph.values, err))
            continue
        except (ArithmeticError, ValueError) as err:  # symbolic arithmetic the rule cannot express
            diags.add(rule_diagnostic(graph, node, graph.values, ShapeError(str(err))))
            continue
        for local, shape, trainable in specs:
            name = ties.get(local, join(node.weight_scope, local))
            if any(not d.is_const for d in shape):
                diags.add(messages.symbolic_weight(node.span, node.op, local, shape_str(shape)))
                continue
            dims = tuple(d.value for d in shape)
            size = prod(dims)
            if size > limits.MAX_WEIGHT_ELEMENTS and name not in weights:
                diags.add(messages.size_out_of_range(
                    node.span, f"weight `{name}` of shape {shape_str(shape)} would have {size:,} elements; a "
                    f"weight tensor has at most {limits.MAX_WEIGHT_ELEMENTS:,} (2^31 - 1)"))
                continue
            if name in weights:
                if weights[name].shape != dims:
                    diags.add(messages.shared_shape_mismatch(node.span, name, str(weights[name].shape), str(dims),
                                                             first_span[name], local in ties))
                continue
            weights[name] = Weight(name, dims, trainable, node.id)
            first_span[name] = node.span
            total += size
            if total > limits.MAX_TOTAL_WEIGHTS:
                diags.add(messages.size_out_of_range(
                    node.span, f"the network's weights would have {total:,} elements with this one; all weights "
                    f"together have at most {limits.MAX_TOTAL_WEIGHTS:,} (2^34)"))
                return replace(graph, weights=tuple(weights.values()))
    return replace(graph, weights=tuple(weights.values()))
