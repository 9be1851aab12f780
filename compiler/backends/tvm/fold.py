"""Inference rewrites of an emitted ONNX graph, for backends that compile it (TVM).

Assumes: a model from `emit_onnx` (weights as initializers) or `build_onnx` (weights as numpy
arrays beside the proto). Guarantees: the same function (to float rounding) with
`Conv -> BatchNormalization` pairs folded into one `Conv` with a bias. The exported `.onnx` keeps
the batch norm (it mirrors the PyTorch module); a compiler that deploys the graph for inference
should not pay for it on every call.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx

from ...emit.onnx import OnnxModel


def fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold every BatchNormalization whose input is a Conv output used by nothing else (a new
    model: `model` is left as it was)."""
    return fold_batchnorm_arrays(OnnxModel.from_proto(model)).to_proto()


def fold_batchnorm_arrays(model: OnnxModel) -> OnnxModel:
    """`fold_batchnorm` of a model whose weights are arrays: its proto is changed in place and the
    arrays it returns are its own, except the folded ones (new arrays: the weights a caller passed
    to `build_onnx` are never written to)."""
    graph = model.proto.graph
    arrays = dict(model.arrays)
    uses = Counter(name for node in graph.node for name in node.input)
    uses.update(o.name for o in graph.output)
    producer = {out: node for node in graph.node for out in node.output}
    removed = []
    for bn in list(graph.node):
        if bn.op_type != "BatchNormalization" or len([o for o in bn.output if o]) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or uses[conv.output[0]] != 1:
            continue
        if not all(n in arrays for n in (*bn.input[1:5], *conv.input[1:])):
            continue
        # The folded tensors take the conv weight's and the batch norm bias's names, so a backend's
        # parameters stay traceable to the checkpoint's keys.
        w_name, b_name = conv.input[1], bn.input[2]
        if uses[w_name] != 1 or uses[b_name] != 1:
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale, beta, mean, var = (np.asarray(arrays[n], np.float64) for n in bn.input[1:5])
        factor = scale / np.sqrt(var + eps)
        w = arrays[w_name]
        b = np.asarray(arrays[conv.input[2]], np.float64) if len(conv.input) > 2 else 0.0
        arrays[w_name] = (w.astype(np.float64) * factor.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        arrays[b_name] = ((b - mean) * factor + beta).astype(w.dtype)
        for name in (*bn.input[1:], *conv.input[2:]):
            uses[name] -= 1
        del conv.input[2:]
        conv.input.append(b_name)
        uses[b_name] += 1
        conv.output[0] = bn.output[0]
        removed.append(bn)
    for bn in removed:
        graph.node.remove(bn)
    arrays = {name: a for name, a in arrays.items() if uses[name] > 0}
    kept = {o for node in graph.node for o in node.output}
    for info in [v for v in graph.value_info if v.name not in kept]:
        graph.value_info.remove(info)
    return OnnxModel(model.proto, arrays)
