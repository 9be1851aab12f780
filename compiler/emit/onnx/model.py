"""The ONNX model of a graph, built straight from the IR with `onnx.helper`, not traced.

Assumes: a typed graph without errors and weights keyed by the compiler's names.
Guarantees: an opset-18 model whose inputs and outputs carry the spec's names and dtypes, whose
symbolic dims stay symbolic (`B`, `T`: a dynamic batch works), whose initializers are named by
the PyTorch `state_dict` keys (a tied weight is stored once), and which describes the network in
inference mode (dropout is the identity, batch norm uses running statistics, the VAE sampler
returns its mean). Every node goes through its op's converter (`OPS[op].onnx`); an op with no
faithful ONNX form raises `EmitError` naming it; nothing is approximated silently.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import helper

from ... import messages
from ...ir.dims import Dim
from ...ir.graph import Graph, Node
from ...ir.types import TensorType
from ...ops import OPS
from ...errors import EmitError
from .builder import OnnxBuilder
from .context import ONNX_DTYPES, OPSET, NoOnnxForm, OnnxContext
from .stream import OnnxModel, save_onnx

__all__ = ["OnnxModel", "build_onnx", "emit_onnx", "save_onnx"]


def emit_onnx(graph: Graph, weights: Mapping[str, np.ndarray],
              value_names: dict[int, str] | None = None) -> onnx.ModelProto:
    """The ONNX model of `graph` with `weights` as initializers; `value_names`, when given, is
    filled with the ONNX name of every IR value (for checking shapes value by value). Holds the
    weights twice (the arrays, and the protobuf's bytes): to write a file, `build_onnx` and
    `save_onnx` hold them once."""
    return build_onnx(graph, weights, value_names).to_proto()


def build_onnx(graph: Graph, weights: Mapping[str, np.ndarray],
               value_names: dict[int, str] | None = None) -> OnnxModel:
    """`emit_onnx`'s model with its initializers still numpy arrays (the `weights` themselves,
    not copies), for `save_onnx` to stream to a file."""
    b = OnnxBuilder()
    names: dict[int, str] = {} if value_names is None else value_names
    inputs = []
    for name, vid in graph.inputs:
        names[vid] = b.reserve(name)
        inputs.append(_value_info(name, graph.values[vid].type))
    for out_name, _ in graph.outputs:
        b.reserve(out_name)  # keep the spec's output names free for the final renames
    added: set[str] = set()
    for node in graph.nodes:
        ctx = _context(b, graph, node, names, weights, added)
        try:
            outs = OPS[node.op].onnx(ctx)
        except NoOnnxForm as err:
            raise EmitError(messages.no_onnx_form(node.span, node.op, str(err))) from None
        for vid, out in zip(node.outputs, outs, strict=True):
            names[vid] = out
    outputs = []
    for out_name, vid in graph.outputs:
        b.nodes.append(helper.make_node("Identity", [names[vid]], [out_name], name=f"output/{out_name}"))
        outputs.append(_value_info(out_name, graph.values[vid].type))
    used = {name for node in b.nodes for name in node.input}
    arrays = {k: a for k, a in b.arrays.items() if k in used}  # not e.g. an LSTM's weights before gate reordering
    model = helper.make_model(helper.make_graph(b.nodes, graph.name, inputs, outputs),
                              opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dlc",
                              producer_version="0.1.0")
    model.ir_version = 9
    return OnnxModel(model, arrays)


def _context(b: OnnxBuilder, graph: Graph, node: Node, names: dict[int, str], weights, added: set[str]):
    in_types = [graph.values[v].type for v in node.inputs]
    ties = dict(node.ties)
    local: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {}
    for wname, _, _ in OPS[node.op].weights(node.attr, in_types):
        full = ties.get(wname, f"{node.weight_scope}.{wname}" if node.weight_scope else wname)
        if full not in added:
            b.weight(full, weights[full])
            added.add(full)
        local[wname] = full
        arrays[wname] = weights[full]
    return OnnxContext(b, node, node.attr, [names[v] for v in node.inputs], in_types,
                       [graph.values[v].type for v in node.outputs], local, arrays)


def _value_info(name: str, t: TensorType) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, ONNX_DTYPES[t.dtype], [_dim(d) for d in t.shape])


def _dim(d: Dim) -> int | str:
    return d.value if d.is_const else str(d)

