"""Shape inference.

Assumes: an expanded graph whose nodes are in topological order and whose graph inputs
carry declared types.
Guarantees: every value produced by a node whose inputs are typed gets the type its op's
shape rule computes (symbolic dims stay symbolic). A rule that rejects its inputs becomes
an E0401 diagnostic showing the input shapes and where each was produced; that node's
outputs stay untyped and nodes downstream of them are skipped silently. So is an output with a
dimension below 1 at the spec's example sizes (`H=1` into `maxpool2d(2)`: H // 2 is 0 there), which
a constant size would have had refused by the rule, and which no backend could run or export.
"""
from __future__ import annotations

from dataclasses import replace

from .. import limits, messages
from ..diagnostics import Diagnostics
from ..ir.dims import shape_str
from ..ir.graph import Graph, Node
from ..ops import OPS, ShapeError


def infer_shapes(graph: Graph, diags: Diagnostics) -> Graph:
    values = list(graph.values)
    for node in graph.nodes:
        ins = [values[v].type for v in node.inputs]
        if any(t is None for t in ins):
            continue
        try:
            outs = OPS[node.op].infer(node.attr, ins)
        except ShapeError as err:
            diags.add(rule_diagnostic(graph, node, values, err))
            continue
        except (ArithmeticError, ValueError) as err:  # symbolic arithmetic the rule cannot express
            diags.add(rule_diagnostic(graph, node, values, ShapeError(str(err))))
            continue
        big = next((d.value for t in outs for d in t.shape if d.is_const and abs(d.value) > limits.MAX_DIM), None)
        if big is not None:
            diags.add(messages.size_out_of_range(node.span, f"an output dimension of {big:,}; a dimension is at most "
                                                 f"{limits.MAX_DIM:,} (2^31 - 1)"))
            continue
        empty = _empty_at_examples(graph, outs)
        if empty is not None:
            diags.add(rule_diagnostic(graph, node, values, ShapeError(empty)))
            continue
        for vid, t in zip(node.outputs, outs, strict=True):  # a rule giving too few types is a bug, not silence
            values[vid] = replace(values[vid], type=t)
    return replace(graph, values=tuple(values))


def _empty_at_examples(graph: Graph, outs) -> str | None:
    """Why an output of these types is empty at the example sizes (`H=1`), or None."""
    env = dict(graph.dim_examples)
    for t in outs:
        for d in t.shape:
            if not d.is_const and d.symbols() <= env.keys():
                try:
                    size = d.evaluate(env)
                except ArithmeticError:
                    continue
                if size < 1:
                    sizes = ", ".join(f"{k}={env[k]}" for k in sorted(d.symbols()))
                    return f"at the example sizes {sizes}, the output dimension `{d}` is {size}"
    return None


def rule_diagnostic(graph: Graph, node: Node, values, err: ShapeError):
    """E0401 for an op rule (shape, weights or cost) that rejected the node's inputs."""
    shown = node.inputs if err.input_index is None else (node.inputs[err.input_index],)
    if err.input_index is not None and err.input_index > 0:
        shown = (node.inputs[0], *shown)
    labels = []
    for vid in dict.fromkeys(shown):
        v = values[vid]
        labels.append((v.span, messages.input_shape(v.name, shape_str(v.type.shape))))
    trace = [messages.instance_note(f.block, f.span) for f in reversed(node.trace)]
    return messages.shape_error(node.span, node.op, err.problem, labels, trace)
