"""Every complete example of docs/language.md (its ```arch blocks) compiles, and the generated
PyTorch module of each network in it has the compiler's weights; the headline examples (a ViT's
class token and position embedding, a MobileNetV2 inverted residual) are checked further."""
from __future__ import annotations

import re

import pytest
import torch

from conftest import ROOT
from dlc.compiler.emit.torch import torch_namespace
from dlc.compiler.passes.cost import count_costs
from dlc.compiler.pipeline import compile_file

DOC = (ROOT / "docs" / "language.md").read_text()
EXAMPLES = re.findall(r"^```arch\n(.*?)^```$", DOC, flags=re.M | re.S)


def _first_line(text: str) -> str:
    return text.splitlines()[0][:60]


def _compile(tmp_path, text: str, params=None):
    path = tmp_path / "example.arch"
    path.write_text(text)
    result = compile_file(path, params=params)
    assert result.ok, [d.message for d in result.diagnostics]
    return path, result


def _example(first_words: str) -> str:
    (text,) = [t for t in EXAMPLES if first_words in t]
    return text


def test_the_docs_have_the_examples_the_issue_asked_for():
    assert len(EXAMPLES) >= 5
    assert "block InvertedResidual" in _example("MobileNetV2's inverted residual")
    assert "param class_token" in _example("network TinyViT")


@pytest.mark.parametrize("text", EXAMPLES, ids=_first_line)
def test_example_compiles_and_its_module_has_the_compilers_weights(tmp_path, text):
    path, result = _compile(tmp_path, text)
    if not result.graphs:
        assert re.search(r"^block ", text, flags=re.M), "an example without a network defines blocks"
        return
    namespace = torch_namespace(path)
    for name, graph in result.graphs.items():
        module = getattr(namespace, name)().eval()
        assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {w.name: w.shape for w in graph.weights}
        env = {**dict(graph.dim_examples), "B": 2}
        inputs = [torch.randn(*[d.evaluate(env) for d in graph.values[v].type.shape]) for _, v in graph.inputs]
        with torch.no_grad():
            out = module(*inputs)
        (_, vid), = graph.outputs
        assert tuple(out.shape) == tuple(d.evaluate(env) for d in graph.values[vid].type.shape)


def test_the_vit_example_has_a_class_token_and_a_position_embedding(tmp_path):
    _, result = _compile(tmp_path, _example("network TinyViT"))
    graph = result.graphs["TinyViT"]
    keys = {w.name: w.shape for w in graph.weights}
    assert keys["class_token"] == (1, 1, 64) and keys["encoder.pos_embedding"] == (1, 17, 64)
    out = graph.values[graph.outputs[0][1]].type
    assert [str(d) for d in out.shape] == ["B", "10"]
    concat = next(n for n in graph.nodes if n.op == "concat")
    assert [str(d) for d in graph.values[concat.outputs[0]].type.shape] == ["B", "17", "64"]


def test_the_mobilenet_example_has_residuals_only_where_stride_and_width_allow(tmp_path):
    _, result = _compile(tmp_path, _example("MobileNetV2's inverted residual"))
    graph = result.graphs["MobileNetV2Start"]
    adds = sorted(n.path.split(".")[0] for n in graph.nodes if n.op == "add")
    assert adds == ["block3", "block5", "block6"]  # stride 1 and cin == cout: the 2nd+ block of a stage
    keys = {w.name: w.shape for w in graph.weights}
    assert "block1.expand_conv.weight" not in keys  # expansion 1: no expand layer
    assert keys["block2.expand_conv.weight"] == (96, 16, 1, 1) and keys["block2.dw_conv.weight"] == (96, 1, 3, 3)
    assert keys["block6.project_conv.weight"] == (32, 192, 1, 1)
    out = graph.values[graph.outputs[0][1]].type
    assert [str(d) for d in out.shape] == ["B", "32", "28", "28"]
    _, half = _compile(tmp_path, _example("MobileNetV2's inverted residual"), params={"width_mult": 0.5})
    assert count_costs(half.graphs["MobileNetV2Start"]).total_params < count_costs(graph).total_params
    assert {w.name: w.shape for w in half.graphs["MobileNetV2Start"].weights}["stem.weight"] == (16, 3, 3, 3)
