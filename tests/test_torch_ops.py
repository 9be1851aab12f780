"""The ops' PyTorch forms (`OpDef.torch`, compiler/ops/) and the helper layers (dlc.runtime.layers).

For a sample configuration of every op, the emitted module and call sources are evaluated with
only the helpers the entry names, run on random input, and checked against the compiler: output
shapes against the op's shape rule, state_dict names and shapes against its weights. Numerics of
the helper layers are checked against their PyTorch counterparts.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import ROOT, SPEC, compile_text
from dlc.compiler.emit.torch.forms import MissingSize, OpSource
from dlc.compiler.ir.dims import Dim
from dlc.compiler.ir.types import TensorType
from dlc.compiler.ops import OPS
from dlc.compiler.ops.table import REQUIRED
from dlc.compiler.pipeline import compile_file

LAYERS = ROOT / "runtime" / "layers" / "__init__.py"
IMPORTS = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


@dataclass
class Case:
    op: str
    attrs: dict = field(default_factory=dict)
    shapes: list = field(default_factory=list)
    dtype: str | tuple[str, ...] = "f32"  # of every input, or one per input
    unit: bool = False  # float inputs drawn from [0, 1) (probabilities), not N(0, 1)

    def dtypes(self) -> list[str]:
        return list(self.dtype) if isinstance(self.dtype, tuple) else [self.dtype] * len(self.shapes)

    def __str__(self) -> str:
        return f"{self.op}({', '.join(f'{k}={v}' for k, v in self.attrs.items())}){self.shapes}"


C = Case
CASES = [
    C("relu", {}, [(2, 3, 4)]), C("leaky_relu", {"slope": 0.2}, [(2, 3)]), C("sigmoid", {}, [(2, 3)]),
    C("tanh", {}, [(2, 3)]), C("softplus", {"beta": 2}, [(2, 3)]), C("gelu", {"approximate": "tanh"}, [(2, 3)]),
    C("gelu", {}, [(2, 3)]), C("elu", {"alpha": 0.5}, [(2, 3)]), C("silu", {}, [(2, 3)]), C("abs", {}, [(2, 3)]),
    C("exp", {}, [(2, 3)]), C("log", {}, [(2, 3)], unit=True), C("identity", {}, [(2, 3)]), C("scale", {"factor": 2.5}, [(2, 3)]),
    C("softmax", {"dim": 1}, [(2, 3, 4)]), C("log_softmax", {}, [(2, 3)]),
    C("relu6", {}, [(2, 3, 4)]), C("hardswish", {}, [(2, 3, 4)]),
    C("hardtanh", {}, [(2, 3, 4)]), C("hardtanh", {"min": 0, "max": 0.5}, [(2, 3)]),
    C("clamp", {"min": 0}, [(2, 3, 4)]), C("clamp", {"max": 0.5}, [(2, 3)]),
    C("clamp", {"min": -0.5, "max": 0.5}, [(2, 3)]), C("clamp", {"min": None, "max": 1}, [(2, 3)]),
    C("hardsigmoid", {}, [(2, 3, 4)]), C("mish", {}, [(2, 3, 4)]),
    C("conv1d", {"out": 4, "kernel": 3, "padding": "same", "groups": 2}, [(2, 4, 10)]),
    C("conv2d", {"out": 8, "kernel": [3, 5], "stride": 2, "padding": [1, 2], "bias": False}, [(2, 3, 9, 11)]),
    C("conv2d", {"out": 4, "kernel": 3, "dilation": 2, "padding": "valid"}, [(1, 2, 10, 10)]),
    C("conv3d", {"out": 4, "kernel": 3, "stride": [1, 2, 2]}, [(1, 2, 5, 6, 7)]),
    C("conv_transpose1d", {"out": 3, "kernel": 4, "stride": 2, "padding": 1}, [(2, 4, 5)]),
    C("conv_transpose2d", {"out": 4, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
      [(1, 4, 5, 6)]),
    C("conv_transpose3d", {"out": 2, "kernel": 2, "stride": 2, "bias": False}, [(1, 3, 2, 3, 4)]),
    C("masked_conv2d", {"out": 4, "kernel": 5, "mask": "A"}, [(1, 3, 8, 8)]),
    C("masked_conv2d", {"out": 4, "kernel": 3, "mask": "B", "padding": 1, "bias": False}, [(1, 3, 6, 7)]),
    C("maxpool1d", {"kernel": 3, "stride": 2, "padding": 1}, [(2, 3, 10)]),
    C("maxpool2d", {"kernel": 3, "stride": 2, "ceil_mode": True}, [(1, 2, 14, 14)]),
    C("maxpool2d", {"kernel": 3, "dilation": 2}, [(1, 2, 11, 12)]),
    C("avgpool1d", {"kernel": 2}, [(2, 3, 9)]),
    C("avgpool2d", {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
      [(1, 2, 10, 11)]),
    C("adaptive_avgpool1d", {"output": 3}, [(2, 3, 10)]), C("adaptive_maxpool1d", {"output": 2}, [(2, 3, 7)]),
    C("adaptive_avgpool2d", {"output": [2, 3]}, [(2, 3, 7, 8)]), C("adaptive_maxpool2d", {"output": 1}, [(2, 3, 5, 5)]),
    C("global_avgpool", {}, [(2, 3, 5, 5)]), C("global_avgpool", {}, [(2, 3, 7)]),
    C("global_maxpool", {}, [(2, 3, 4, 5, 6)]),
    C("upsample", {}, [(1, 2, 3, 4)]),
    C("upsample", {"scale": 3, "mode": "bilinear", "align_corners": True}, [(1, 2, 3, 4)]),
    C("upsample", {"mode": "bilinear"}, [(1, 2, 3, 4)]), C("upsample", {"scale": 2}, [(1, 2, 5)]),
    C("batchnorm1d", {}, [(4, 3)]), C("batchnorm1d", {"affine": False}, [(4, 3, 5)]),
    C("batchnorm2d", {"eps": 1e-3, "momentum": 0.2}, [(2, 3, 4, 4)]),
    C("layernorm", {}, [(2, 5, 8)]), C("layernorm", {"dims": 2, "affine": False, "eps": 1e-6}, [(2, 5, 8)]),
    C("groupnorm", {"groups": 2}, [(2, 4, 3, 3)]),
    C("layernorm2d", {}, [(2, 3, 4, 5)]), C("layernorm2d", {"eps": 1e-3}, [(1, 6, 2, 1)]),
    C("dropout", {"p": 0.1}, [(2, 3)]), C("dropout2d", {}, [(2, 3, 4, 4)]),
    C("drop_path", {"p": 0.2}, [(2, 3, 4)]), C("drop_path", {"p": 0.0}, [(3,)]),
    C("random_shift", {"pixels": 1}, [(2, 3, 5, 6)]), C("random_shift", {"pixels": 2}, [(2, 3, 4, 5, 6)]),
    C("embedding", {"num": 10, "dim": 4, "padding_idx": 0}, [(2, 5)], "i64"),
    C("pos_embedding", {"max_len": 8}, [(2, 5, 6)]),
    C("sinusoidal_pe", {}, [(2, 5, 6)]), C("sinusoidal_pe", {"max_len": 16}, [(2, 5, 6)]),
    C("mha", {"heads": 2}, [(2, 5, 8)]),
    C("mha", {"heads": 2, "causal": True}, [(2, 4, 8), (2, 6, 5)]),
    C("mha", {"heads": 4, "bias": False, "dropout": 0.1}, [(2, 3, 8), (2, 6, 5), (2, 6, 7)]),
    C("attention", {}, [(2, 4, 6), (2, 5, 6), (2, 5, 3)]),
    C("attention", {"causal": True, "scaled": False}, [(2, 3, 4, 6), (2, 3, 4, 6), (2, 3, 4, 5)]),
    C("attention", {}, [(4, 6), (5, 6), (5, 3)]),
    C("additive_attention", {"units": 7}, [(2, 3, 4), (2, 5, 6)]),
    C("lstm", {"hidden": 6}, [(2, 5, 4)]),
    C("lstm", {"hidden": 6, "layers": 2, "bidirectional": True, "dropout": 0.1, "state": True}, [(2, 5, 4)]),
    C("lstm", {"hidden": 6, "layers": 2, "state": True}, [(2, 5, 4), (2, 2, 6), (2, 2, 6)]),
    C("gru", {"hidden": 6, "state": True}, [(2, 5, 4), (1, 2, 6)]),
    C("gru", {"hidden": 3, "bidirectional": True}, [(2, 5, 4)]),
    C("linear", {"out": 5}, [(2, 3, 4)]), C("linear", {"out": 5, "bias": False}, [(7, 4)]),
    C("flatten", {}, [(2, 3, 4, 5)]), C("flatten", {"start": 0, "end": 1}, [(2, 3, 4)]),
    C("flatten", {"start": 2}, [(2, 3, 4, 5)]), C("flatten", {"end": 2}, [(2, 3, 4, 5)]),
    C("reshape", {"shape": [-1, 4, 6]}, [(2, 3, 8)]), C("reshape", {"shape": [6, 8]}, [(2, 3, 8)]),
    C("unflatten", {"dim": 2, "sizes": [2, -1]}, [(2, 3, 8)]), C("unflatten", {"dim": -1, "sizes": [2, 4]}, [(3, 8)]),
    C("permute", {"dims": [0, 2, 1]}, [(2, 3, 4)]), C("transpose", {"dim0": 1, "dim1": -1}, [(2, 3, 4, 5)]),
    C("expand", {}, [(1, 1, 4), (3, 5, 4)]), C("expand", {"dims": [-2, 0]}, [(1, 1, 4), (3, 5, 4)]),
    C("expand", {"dims": [1]}, [(3, 1), (3, 6)]),
    C("unsqueeze", {"dim": 1}, [(2, 3)]), C("unsqueeze", {"dim": -1}, [(2, 3)]), C("squeeze", {"dim": 1}, [(2, 1, 3)]),
    C("concat", {}, [(2, 3, 4), (2, 5, 4)]), C("concat", {"dim": -1}, [(2, 3), (2, 4), (2, 1)]),
    C("add", {}, [(2, 3, 4), (3, 1), (1,)]), C("sub", {}, [(2, 3), (2, 3)]),
    C("mul", {}, [(2, 3), (2, 3), (1, 3)]), C("div", {}, [(2, 3), (1, 3)]),
    C("matmul", {}, [(2, 3, 4), (4, 5)]), C("matmul", {}, [(2, 1, 3, 4), (5, 4, 6)]),
    C("chunk", {"chunks": 3}, [(2, 6, 4)]), C("chunk", {"chunks": 2, "dim": -1}, [(2, 3, 4)]),
    C("split", {"sizes": [2, 4]}, [(2, 6, 3)]), C("split", {"sizes": [1, 2], "dim": 0}, [(3, 4)]),
    C("select", {"dim": 1, "index": 0}, [(2, 3, 4)]), C("select", {"dim": -1, "index": -1}, [(2, 3, 4)]),
    C("select", {"dim": -2, "index": 1}, [(2, 3, 4)]),
    C("slice", {"dim": 1, "start": 1, "end": 3}, [(2, 5)]), C("slice", {"dim": -1, "start": 1, "step": 2}, [(2, 3, 6)]),
    C("slice", {"dim": 1, "end": 10}, [(2, 4)]), C("slice", {"dim": 0, "start": 1, "end": 8, "step": 3}, [(7, 2)]),
    C("sum", {}, [(2, 3, 4)]), C("sum", {"dim": [1, 2], "keepdim": True}, [(2, 3, 4)]),
    C("mean", {"dim": 1}, [(2, 3, 4)]), C("cosine_similarity", {}, [(2, 5, 3), (2, 5, 3)]),
    C("cosine_similarity", {"dim": -1, "eps": 1e-6}, [(2, 5), (1, 5)]),
    C("pair_distance", {}, [(2, 5), (2, 5)]), C("pair_distance", {"dim": -1, "eps": 0.0}, [(2, 3, 4), (2, 3, 4)]),
    C("contrastive", {}, [(4,), (4,)], unit=True), C("cosine_embedding", {"margin": 0.2}, [(4,), (4,)], unit=True),
    C("verification_accuracy", {}, [(4,), (4,)], unit=True),
    C("verification_accuracy", {"threshold": 0.3, "same_if": "below"}, [(4, 1), (4, 1)], unit=True),
    C("reparameterize", {}, [(2, 4), (2, 4)]),
    C("cross_entropy", {}, [(4, 5), (4,)], ("f32", "i64")),
    C("cross_entropy", {"axis": -1, "smoothing": 0.1, "reduce": "sum"}, [(2, 3, 5), (2, 3)], ("f32", "i64")),
    C("cross_entropy", {"axis": 2}, [(2, 3, 4), (2, 3, 4)], unit=True),
    C("mse", {}, [(2, 3), (2, 3)]), C("l1", {"reduce": "sum"}, [(2, 3, 4), (2, 3, 4)]),
    C("bce", {}, [(2, 3), (2, 3)], unit=True), C("bce_logits", {"reduce": "sum"}, [(2, 3), (2, 3)]),
    C("kl_normal", {}, [(2, 4), (2, 4)]), C("kl_normal", {"reduce": "mean"}, [(2, 3, 4), (2, 3, 4)]),
    C("accuracy", {}, [(4, 3), (4,)], ("f32", "i64")), C("accuracy", {"axis": -1}, [(2, 3, 4), (2, 3)], ("f32", "i64")),
    C("iou", {}, [(2, 3, 4, 4), (2, 4, 4)], ("f32", "i64")), C("iou", {"axis": -1}, [(2, 5, 3), (2, 5)], ("f32", "i64")),
    C("bits", {}, [()]), C("bits", {}, [(2, 3)]), C("detach", {}, [(2, 3)]),
    C("to_levels", {"levels": 4}, [(2, 3)], unit=True),
    C("noise", {"shape": [16]}, [(3, 5)]), C("noise", {"shape": [4, 1, 1], "dist": "uniform"}, [(2, 7)]),
    C("grad", {}, [(2, 3), (2, 4)]), C("sign", {}, [(2, 3)]), C("square", {}, [(2, 3)]),
    C("shift", {"by": -1.0}, [(2, 3)]), C("norm", {}, [(2, 3, 4)]), C("interpolate_random", {}, [(3, 2, 2), (3, 2, 2)]),
]


# --- building and running an entry ------------------------------------------------------------------

@lru_cache(maxsize=None)
def helper_sources() -> dict[str, str]:
    """Each top-level class and function of layers.py, by name, as the emitter would copy it."""
    text = LAYERS.read_text()
    tree = ast.parse(text)
    return {node.name: ast.get_source_segment(text, node) for node in tree.body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


@lru_cache(maxsize=None)
def _base_namespace(helpers: tuple[str, ...]) -> dict:
    ns: dict = {}
    exec(IMPORTS, ns)
    for name in helpers:
        exec(helper_sources()[name], ns)
    return ns


def namespace(helpers: tuple[str, ...]) -> dict:
    """torch, nn, F, math and only the named helpers; `self` for forward()-style calls in eval mode."""
    return {**_base_namespace(helpers), "self": SimpleNamespace(training=False)}


def full_attrs(case: Case) -> dict:
    attrs = {}
    for p in OPS[case.op].params:
        assert p.name in case.attrs or p.default is not REQUIRED, f"{case}: `{p.name}` is required"
        value = case.attrs.get(p.name, p.default)
        attrs[p.name] = None if value is None else p.check(value)  # as the compiler normalizes defaults
    return attrs


def op_source(case: Case, attrs: dict) -> OpSource:
    return OpSource({k: repr(v) for k, v in attrs.items()}, frozenset(case.attrs),
                    tuple(tuple(str(d) for d in s) for s in case.shapes))


def inputs_of(case: Case, attrs: dict) -> list[torch.Tensor]:
    """Ids below `num` (an embedding's) or 2 (class indices), floats from N(0, 1) or [0, 1)."""
    torch.manual_seed(0)
    return [torch.randint(0, attrs.get("num", 2), s) if dtype == "i64" else torch.rand(s) if case.unit
            else torch.randn(s) for dtype, s in zip(case.dtypes(), case.shapes, strict=True)]


def as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def dims(shape) -> tuple[int, ...]:
    return tuple(d.value for d in shape)


# --- the table against the compiler -------------------------------------------------------------------

FORMS = {name: op.torch for name, op in OPS.items() if op.torch is not None}  # all but internal ops


def test_every_op_with_a_form_has_a_case():
    assert set(FORMS) <= {c.op for c in CASES}, set(FORMS) - {c.op for c in CASES}


def test_modules_exactly_for_weighted_and_single_input_ops():
    for op, entry in FORMS.items():
        needs_module = not OPS[op].weight_free or OPS[op].inputs == (1, 1)
        assert (entry.module is not None) == needs_module, op


def test_helpers_exist_and_are_used():
    named = {h for entry in FORMS.values() for h in entry.helpers}
    assert named <= set(helper_sources()), named - set(helper_sources())
    assert set(helper_sources()) <= named, set(helper_sources()) - named


@pytest.mark.parametrize("case", CASES, ids=str)
def test_entry_matches_the_compiler(case):
    attrs = full_attrs(case)
    types = [TensorType(dtype, tuple(Dim.const(d) for d in s)) for dtype, s in zip(case.dtypes(), case.shapes,
                                                                                     strict=True)]
    expected = [dims(t.shape) for t in OPS[case.op].infer(attrs, types)]
    entry, src = OPS[case.op].torch, op_source(case, attrs)
    ns = namespace(entry.helpers)
    names = [f"x{i}" for i in range(len(case.shapes))]
    ns.update(zip(names, inputs_of(case, attrs), strict=True))
    outs = []
    if entry.module is not None:
        ns["m"] = eval(entry.module(src), ns).eval()
        weights = {name: dims(shape) for name, shape, _ in OPS[case.op].weights(attrs, types)}
        assert {k: tuple(v.shape) for k, v in ns["m"].state_dict().items()} == weights
        torch.manual_seed(1)  # the same draws for both forms of a sampling op (`noise`)
        outs.append(as_tuple(eval(entry.call(src, "m", names), ns)))
    if OPS[case.op].weight_free:
        torch.manual_seed(1)
        outs.append(as_tuple(eval(entry.call(src, None, names), ns)))
    for out in outs:
        assert [tuple(o.shape) for o in out] == expected
        for o, first in zip(out, outs[0], strict=True):
            torch.testing.assert_close(o, first)


def zoo_nodes() -> list[tuple[str, dict, list[TensorType], list[TensorType]]]:
    """Every distinct (op, attrs, input types) of the zoo, with its output types."""
    seen = {}
    for path in sorted(SPEC.glob("*.arch")):
        for graph in compile_file(path).graphs.values():
            for node in graph.nodes:
                ins = [graph.values[v].type for v in node.inputs]
                outs = [graph.values[v].type for v in node.outputs]
                key = (node.op, node.attrs, tuple(ins))
                if OPS[node.op].category != "internal" and key not in seen:  # the emitter writes those from the AST
                    seen[key] = (node.op, node.attr, ins, outs)
    return list(seen.values())


def test_zoo_nodes():
    """Each zoo node with symbolic dims unknown (None): modules build with the op's exact weights.
    (Sizes are the op's own shape rule evaluated on the class's sizes: tests/test_symbolic_rules.py.)"""
    nodes = zoo_nodes()
    assert len(nodes) > 200
    for op, attrs, ins, outs in nodes:
        entry = OPS[op].torch
        src = OpSource({k: repr(v) for k, v in attrs.items()}, frozenset(),
                       tuple(tuple(str(d.value) if d.is_const else None for d in t.shape) for t in ins))
        names = [f"x{i}" for i in range(len(ins))]
        if entry.module is not None:
            with torch.device("meta"):
                module = eval(entry.module(src), namespace(entry.helpers))
            weights = {name: dims(shape) for name, shape, _ in OPS[op].weights(attrs, ins)}
            assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == weights, (op, attrs)
            assert entry.call(src, "self.m", names) == f"self.m({', '.join(names)})"
        if OPS[op].weight_free:
            entry.call(src, None, names)


# --- readable source ----------------------------------------------------------------------------------

def src(attrs: dict, given: set, *shapes) -> OpSource:
    return OpSource(attrs, frozenset(given), tuple(shapes))


CONV = {"out": "64", "kernel": "(3, 3)", "stride": "(2, 2)", "padding": "(1, 1)", "dilation": "(1, 1)",
        "groups": "1", "bias": "False"}


def test_conv_source_omits_defaults_and_prints_given_keywords():
    s = src(CONV, {"out", "kernel", "stride", "padding", "bias"}, (None, "3", "H", "W"))
    assert OPS["conv2d"].torch.module(s) == "nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)"
    assert OPS["conv2d"].torch.call(s, "self.conv1", ["h"]) == "self.conv1(h)"
    s = src({**CONV, "stride": "(1, 1)", "padding": "'same'", "bias": "True", "kernel": "(3, 5)"},
            {"stride"}, (None, "c", "H", "W"))
    assert OPS["conv2d"].torch.module(s) == "nn.Conv2d(c, 64, (3, 5), stride=1, padding='same')"


def test_masked_conv_source():
    s = src({**CONV, "mask": '"A"', "stride": "(1, 1)", "padding": '"same"', "bias": "True", "kernel": "(7, 7)"},
            {"out", "kernel", "mask"}, (None, "3", "28", "28"))
    assert OPS["masked_conv2d"].torch.module(s) == "MaskedConv2d(3, 64, 7, mask='A')"


def test_activation_pool_and_dropout_sources():
    pool = src({"kernel": "(3, 3)", "stride": "(2, 2)", "padding": "(1, 1)", "dilation": "(1, 1)",
                "ceil_mode": "False"}, {"kernel", "stride", "padding"}, (None, "64", "112", "112"))
    assert OPS["maxpool2d"].torch.module(pool) == "nn.MaxPool2d(3, stride=2, padding=1)"
    assert OPS["maxpool2d"].torch.call(pool, None, ["h"]) == "F.max_pool2d(h, 3, stride=2, padding=1)"
    assert OPS["relu"].torch.call(src({}, set(), (None, "8")), None, ["h"]) == "F.relu(h)"
    assert OPS["relu"].torch.module(src({}, set(), (None, "8"))) == "nn.ReLU()"
    drop = src({"p": "p"}, {"p"}, (None, "8"))
    assert OPS["dropout"].torch.module(drop) == "nn.Dropout(p)"
    assert OPS["dropout"].torch.call(drop, None, ["h"]) == "F.dropout(h, p, training=self.training)"
    assert OPS["leaky_relu"].torch.module(src({"slope": "0.2"}, {"slope"}, (None, "8"))) == "nn.LeakyReLU(0.2)"
    drop = src({"p": "0.1 * i"}, {"p"}, (None, "8"))
    assert OPS["drop_path"].torch.module(drop) == "DropPath(0.1 * i)"
    assert OPS["drop_path"].torch.call(drop, None, ["h"]) == "drop_path(h, 0.1 * i, training=self.training)"
    up = src({"scale": "2.0", "mode": "'bilinear'", "align_corners": "False"}, {"mode"}, (None, "3", "H", "8"))
    assert OPS["upsample"].torch.module(up) == "nn.Upsample(scale_factor=2, mode='bilinear')"


def test_clipping_sources_name_pytorch_s_keywords():
    """nn.Hardtanh's bounds are `min_val`/`max_val`; a bound is written only when given or not PyTorch's default."""
    ht = src({"min": "0.0", "max": "1.0"}, {"min"}, (None, "8"))
    assert OPS["hardtanh"].torch.module(ht) == "nn.Hardtanh(min_val=0.0)"
    assert OPS["hardtanh"].torch.call(ht, None, ["h"]) == "F.hardtanh(h, min_val=0.0)"
    ht = src({"min": "-1.0", "max": "top"}, {"max"}, (None, "8"))
    assert OPS["hardtanh"].torch.module(ht) == "nn.Hardtanh(max_val=top)"
    cl = src({"min": "None", "max": "6.0"}, {"min", "max"}, (None, "8"))
    assert OPS["clamp"].torch.module(cl) == "Clamp(max=6.0)"
    assert OPS["clamp"].torch.call(cl, None, ["h"]) == "torch.clamp(h, max=6.0)"
    cl = src({"min": "lo", "max": "hi"}, {"min", "max"}, (None, "8"))
    assert OPS["clamp"].torch.call(cl, None, ["h"]) == "torch.clamp(h, min=lo, max=hi)"


# Bounds PyTorch refuses when it builds or runs the layer: the op's own shape rule refuses them first.
REFUSED = [
    ("hardtanh(1, 1)", lambda x: nn.Hardtanh(1.0, 1.0)(x)),
    ("hardtanh(0.5, max=-0.5)", lambda x: F.hardtanh(x, 0.5, -0.5)),
    ("clamp", lambda x: torch.clamp(x)),
    ("clamp(none, none)", lambda x: torch.clamp(x, None, None)),
]


@pytest.mark.parametrize("stage,run", REFUSED, ids=[r[0] for r in REFUSED])
def test_bounds_pytorch_refuses_are_shape_errors(tmp_path, stage, run):
    result = compile_text(f"network N {{\n  input x: f32[B, 4]\n  output y = x -> {stage}\n}}\n", tmp_path)
    assert [(d.code, d.primary.span.line) for d in result.diagnostics] == [("E0401", 3)]
    with pytest.raises((AssertionError, RuntimeError, ValueError)):
        run(torch.randn(2, 4))


@pytest.mark.parametrize("op", ["hardtanh", "hardsigmoid", "mish"])
def test_float_activations_refuse_integers_as_pytorch_does(tmp_path, op):
    result = compile_text(f"network N {{\n  input x: i64[B, 4]\n  output y = x -> {op}\n}}\n", tmp_path)
    assert [(d.code, d.message) for d in result.diagnostics] == [
        ("E0401", f"shape error in `{op}`: expects a floating-point input, got i64")]
    if op != "hardtanh":  # F.hardtanh runs on integers, with the bounds truncated
        with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
            getattr(F, op)(torch.arange(4))


def test_clamp_with_crossed_bounds_is_refused(tmp_path):
    """torch.clamp(x, 1, 0.5) is the constant 0.5, which no one means: a shape error too."""
    result = compile_text("network N {\n  input x: f32[B, 4]\n  output y = x -> clamp(1, 0.5)\n}\n", tmp_path)
    assert [(d.code, d.message) for d in result.diagnostics] == [
        ("E0401", "shape error in `clamp`: needs min <= max, got min=1.0, max=0.5")]


def test_tensor_op_sources():
    assert OPS["concat"].torch.call(src({"dim": "1"}, set(), (None, "c", "8"), (None, "32", "8")), None,
                                ["a", "b"]) == "torch.cat([a, b], dim=1)"
    assert OPS["add"].torch.call(src({}, set()), None, ["a + b", "c"]) == "a + b + c"
    assert OPS["mul"].torch.call(src({}, set()), None, ["a + b", "c"]) == "(a + b) * c"
    flat = src({"start": "1", "end": "-1"}, set(), (None, "16", "5", "5"))
    assert (OPS["flatten"].torch.module(flat), OPS["flatten"].torch.call(flat, None, ["h"])) == ("nn.Flatten()", "h.flatten(1)")
    sel = src({"dim": "1", "index": "0"}, {"dim", "index"}, (None, "T", "768"))
    assert OPS["select"].torch.call(sel, None, ["h"]) == "h[:, 0]"
    reshape = src({"shape": "(-1, channels, size, size)"}, {"shape"}, (None, "784"))
    assert OPS["reshape"].torch.module(reshape) == "Reshape((-1, channels, size, size))"
    assert OPS["reshape"].torch.call(reshape, None, ["self.fc(z)"]) == "self.fc(z).reshape(-1, channels, size, size)"
    assert OPS["reparameterize"].torch.call(src({}, set()), None, ["mu", "logvar"]) == \
        "reparameterize(mu, logvar, self.training)"
    att = src({"causal": "False", "scaled": "False"}, {"scaled"})
    assert OPS["attention"].torch.call(att, None, ["q", "k", "v"]) == "F.scaled_dot_product_attention(q, k, v, scale=1.0)"


def test_sequence_sources():
    lstm = src({"hidden": "hidden", "layers": "1", "bidirectional": "True", "dropout": "0.0", "state": "True"},
               {"hidden", "bidirectional", "state"}, (None, None, "emb"))
    assert OPS["lstm"].torch.module(lstm) == "LSTM(emb, hidden, bidirectional=True, return_state=True)"
    assert OPS["lstm"].torch.call(lstm, "self.enc", ["x", "h0", "c0"]) == "self.enc(x, h0, c0)"
    mha = src({"heads": "2", "causal": "True", "dropout": "0.0", "bias": "True"}, {"heads", "causal"},
              (None, None, "d"), (None, None, "5"))
    assert OPS["mha"].torch.module(mha) == "MultiheadAttention(d, 2, causal=True, kdim=5)"
    lin = src({"out": "4 * d", "bias": "True"}, {"out"}, (None, None, "d"))
    assert OPS["linear"].torch.module(lin) == "nn.Linear(d, 4 * d)"
    ln = src({"eps": "eps", "dims": "1", "affine": "True"}, {"eps"}, (None, None, "d"))
    assert OPS["layernorm"].torch.module(ln) == "nn.LayerNorm(d, eps=eps)"
    ln2d = src({"eps": "1e-06"}, set(), (None, "dim", None, None))
    assert OPS["layernorm2d"].torch.module(ln2d) == "LayerNorm2d(dim, eps=1e-06)"
    assert OPS["layernorm2d"].torch.module(src({"eps": "1e-05"}, {"eps"}, (None, "96", "56", "56"))) == \
        "LayerNorm2d(96, eps=1e-05)"


def test_non_literal_dims_are_written_as_given():
    x = (None, "c", "8")
    assert OPS["select"].torch.call(src({"dim": "d", "index": "0"}, set(), x), None, ["h"]) == "h.select(d, 0)"
    assert OPS["slice"].torch.call(src({"dim": "d", "start": "1", "end": "None", "step": "1"}, {"dim", "start"}, x),
                               None, ["h"]) == "Slice(d, start=1)(h)"


def test_unknown_sizes_raise_missing_size():
    with pytest.raises(MissingSize) as err:
        OPS["conv2d"].torch.module(src(CONV, set(), (None, None, "8", "8")))
    assert (err.value.input_index, err.value.dim) == (0, 1)
    with pytest.raises(MissingSize) as err:
        OPS["mha"].torch.module(src({"heads": "2", "causal": "False", "dropout": "0.0", "bias": "True"}, set(),
                                (None, None, "8"), (None, None, None)))
    assert (err.value.input_index, err.value.dim) == (1, 2)
    with pytest.raises(ValueError):  # a weighted op has no functional form
        OPS["linear"].torch.call(src({"out": "3", "bias": "True"}, set(), (None, "4")), None, ["h"])


# --- helper numerics ------------------------------------------------------------------------------------

def helper(name: str):
    return namespace((name,))[name]


@pytest.mark.parametrize("kdim,vdim,causal,bias", [(None, None, False, True), (None, None, True, True),
                                                  (5, 5, False, True), (5, 7, True, False)])
def test_multihead_attention_matches_torch(kdim, vdim, causal, bias):
    torch.manual_seed(0)
    e, heads, tq, tk = 8, 2, 4, 6 if kdim else 4
    ours = helper("MultiheadAttention")(e, heads, bias=bias, causal=causal, kdim=kdim, vdim=vdim).eval()
    ref = nn.MultiheadAttention(e, heads, bias=bias, batch_first=True, kdim=kdim, vdim=vdim or kdim).eval()
    sd = ours.state_dict()
    with torch.no_grad():
        if ref._qkv_same_embed_dim:
            ref.in_proj_weight.copy_(torch.cat([sd[f"{p}_proj.weight"] for p in "qkv"]))
        else:
            for p in "qkv":
                getattr(ref, f"{p}_proj_weight").copy_(sd[f"{p}_proj.weight"])
        if bias:
            ref.in_proj_bias.copy_(torch.cat([sd[f"{p}_proj.bias"] for p in "qkv"]))
            ref.out_proj.bias.copy_(sd["out_proj.bias"])
        ref.out_proj.weight.copy_(sd["out_proj.weight"])
    q = torch.randn(2, tq, e)
    k = torch.randn(2, tk, kdim or e) if kdim else q
    v = k if kdim == vdim else torch.randn(2, tk, vdim)
    mask = torch.triu(torch.ones(tq, tk, dtype=torch.bool), 1) if causal else None
    expected, _ = ref(q, k, v, attn_mask=mask, need_weights=False)
    got = ours(q) if kdim is None else ours(q, k) if kdim == vdim else ours(q, k, v)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mask", ["A", "B"])
def test_masked_conv_is_causal(mask):
    torch.manual_seed(0)
    conv = helper("MaskedConv2d")(2, 3, 5, mask)
    assert set(conv.state_dict()) == {"weight", "bias"}
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    out = conv(x)
    for i, j in [(0, 0), (2, 3), (5, 5), (3, 0)]:
        (grad,) = torch.autograd.grad(out[0, :, i, j].sum(), x, retain_graph=True)
        seen = grad.abs().sum(dim=(0, 1)) > 0
        for r in range(6):
            for c in range(6):
                before = r < i or (r == i and c < j)
                if (r, c) == (i, j):
                    assert seen[r, c] == (mask == "B")
                elif not before:
                    assert not seen[r, c], (i, j, r, c)
        if (i, j) == (2, 3):
            assert seen[i, j - 1] and seen[i - 1, j + 1]  # left neighbour, and the row above


def test_sinusoidal_encoding_formula():
    ns = namespace(OPS["sinusoidal_pe"].torch.helpers)
    module = ns["SinusoidalPositionalEncoding"](6, max_len=10)
    assert len(module.state_dict()) == 0
    x = torch.zeros(2, 5, 6)
    pe = module(x)[0]
    for pos in range(5):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    torch.testing.assert_close(ns["add_sinusoidal_encoding"](x), module(x))


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_lstm_and_gru_match_torch(layers, bidirectional):
    torch.manual_seed(0)
    dirs = 2 if bidirectional else 1
    x = torch.randn(2, 5, 4)
    h0, c0 = torch.randn(dirs * layers, 2, 6), torch.randn(dirs * layers, 2, 6)
    lstm = helper("LSTM")(4, 6, num_layers=layers, bidirectional=bidirectional, return_state=True)
    ref = nn.LSTM(4, 6, layers, batch_first=True, bidirectional=bidirectional)
    ref.load_state_dict(lstm.state_dict())
    out, (h, c) = ref(x, (h0, c0))
    for got, want in zip(lstm(x, h0, c0), (out, h, c), strict=True):
        torch.testing.assert_close(got, want)
    gru = helper("GRU")(4, 6, num_layers=layers, bidirectional=bidirectional)
    ref = nn.GRU(4, 6, layers, batch_first=True, bidirectional=bidirectional)
    ref.load_state_dict(gru.state_dict())
    torch.testing.assert_close(gru(x, h0), ref(x, h0)[0])
    torch.testing.assert_close(gru(x), ref(x)[0])


def test_additive_attention_and_reparameterize():
    torch.manual_seed(0)
    att = helper("AdditiveAttention")(4, 6, 7)
    q, mem = torch.randn(2, 3, 4), torch.randn(2, 5, 6)
    scores = torch.stack([torch.stack([att.score(torch.tanh(att.query(q[b, t]) + att.key(mem[b, i])))[0]
                                       for i in range(5)]) for b in range(2) for t in range(3)]).view(2, 3, 5)
    torch.testing.assert_close(att(q, mem), torch.softmax(scores, -1) @ mem)
    reparameterize = helper("reparameterize")
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4)
    assert reparameterize(mu, logvar, False) is mu
    torch.manual_seed(1)
    eps = torch.randn_like(mu)
    torch.manual_seed(1)
    torch.testing.assert_close(reparameterize(mu, logvar, True), mu + torch.exp(logvar / 2) * eps)


def test_drop_path_is_torchvision_s_row_mode_stochastic_depth():
    """torchvision.ops.stochastic_depth(x, p, "row", training) (torchvision is not installed here):
    noise = empty(B, 1, ..., 1).bernoulli_(1 - p), divided by 1 - p; x * noise while training."""
    ns = namespace(OPS["drop_path"].torch.helpers)
    drop_path, layer = ns["drop_path"], ns["DropPath"](0.3)
    torch.manual_seed(0)
    x = torch.randn(64, 3, 4, 5)
    assert drop_path(x, 0.3, training=False) is x and layer.eval()(x) is x
    assert drop_path(x, 0.0, training=True) is x
    for p in (0.3, 0.9):
        torch.manual_seed(1)
        noise = torch.empty(64, 1, 1, 1).bernoulli_(1 - p).div_(1 - p)
        torch.manual_seed(1)
        torch.testing.assert_close(drop_path(x, p, training=True), x * noise, rtol=0, atol=0)
    torch.manual_seed(2)
    out = layer.train()(x)
    kept = [bool(out[i].any()) for i in range(64)]
    for i, k in enumerate(kept):  # a whole sample is dropped, or all of it is scaled
        torch.testing.assert_close(out[i], x[i] / 0.7 if k else torch.zeros_like(x[i]))
    assert 0 < sum(kept) < 64


def test_drop_path_keeps_the_expectation_while_training():
    """E[drop_path(x)] = x: (1 - p) of the samples survive, each scaled by 1 / (1 - p)."""
    layer = namespace(OPS["drop_path"].torch.helpers)["DropPath"](0.25).train()
    torch.manual_seed(0)
    x = torch.rand(40000, 2) + 0.5
    out = layer(x)
    dropped = (out == 0).all(dim=1).float().mean().item()
    assert dropped == pytest.approx(0.25, abs=0.015)  # 7 standard deviations
    torch.testing.assert_close(out.mean(dim=0), x.mean(dim=0), rtol=0, atol=0.02)


def test_random_shift_moves_each_example_by_its_own_offsets():
    """While training, example b is x[b] moved by its (dy, dx) in [-p, p], zero fill: out[.., i, j] =
    x[.., i - dy, j - dx] where that lies inside; the identity in eval mode and for p = 0."""
    ns = namespace(OPS["random_shift"].torch.helpers)
    random_shift, layer = ns["random_shift"], ns["RandomShift"](2)
    torch.manual_seed(0)
    x = torch.rand(200, 3, 6, 7) + 0.1  # no zeros: a zero in the output is fill
    assert random_shift(x, 2, training=False) is x and layer.eval()(x) is x and random_shift(x, 0) is x
    torch.manual_seed(5)
    offsets = torch.randint(-2, 3, (200, 2))
    torch.manual_seed(5)
    out = layer.train()(x)
    assert out.shape == x.shape
    for b, (dy, dx) in enumerate(offsets.tolist()):
        want = torch.zeros_like(x[b])
        rows, cols = slice(max(dy, 0), 6 + min(dy, 0)), slice(max(dx, 0), 7 + min(dx, 0))
        want[:, rows, cols] = x[b, :, max(-dy, 0):6 - max(dy, 0), max(-dx, 0):7 - max(dx, 0)]
        torch.testing.assert_close(out[b], want, rtol=0, atol=0)
    assert len({tuple(o) for o in offsets.tolist()}) == 25  # every offset pair drawn: not one shift for all
    # the gradient flows back to the pixels that stayed in the image (DiffAugment's differentiable shift)
    x.requires_grad_(True)
    torch.manual_seed(5)
    random_shift(x, 2).sum().backward()
    kept = [(6 - abs(dy)) * (7 - abs(dx)) * 3 for dy, dx in offsets.tolist()]
    for b, k in enumerate(kept):
        assert int(x.grad[b].sum()) == k


def test_random_shift_refuses_a_shift_wider_than_the_image():
    from dlc.compiler.ops.table import ShapeError
    from dlc.compiler.ir.types import TensorType
    from dlc.compiler.ir.dims import Dim
    t = TensorType("f32", (Dim.const(2), Dim.const(1), Dim.const(3), Dim.const(8)))
    with pytest.raises(ShapeError, match="moves a dim of 3 px out of the image"):
        OPS["random_shift"].infer({"pixels": 3}, [t])
    with pytest.raises(ShapeError, match=r"images \(B, .., H, W\)"):
        OPS["random_shift"].infer({"pixels": 1}, [TensorType("f32", (Dim.const(2), Dim.const(8)))])


def test_layernorm2d_normalizes_each_position_over_its_channels():
    """torchvision's ConvNeXt LayerNorm2d, written out: per (b, h, w), the mean and biased variance
    over C, then the per-channel affine; the state_dict is nn.LayerNorm(C)'s."""
    torch.manual_seed(0)
    norm = helper("LayerNorm2d")(6, eps=1e-6)
    assert isinstance(norm, nn.LayerNorm)
    assert {k: tuple(v.shape) for k, v in norm.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in nn.LayerNorm(6).state_dict().items()} == {"weight": (6,), "bias": (6,)}
    with torch.no_grad():
        norm.weight.copy_(torch.randn(6))
        norm.bias.copy_(torch.randn(6))
    x = torch.randn(2, 6, 3, 5) * 3 + 1
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-6) * norm.weight.view(1, 6, 1, 1) + norm.bias.view(1, 6, 1, 1)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)
