"""The language features of issue 15 through the backends: for each spec here, the generated
PyTorch module's state_dict equals the compiler's weights (names and shapes), its forward pass
gives the IR's output shapes, and ONNX Runtime on the ONNX export computes what the module does."""
from __future__ import annotations

import pytest
import torch

from conftest import onnx_vs_torch
from dlc.compiler.emit.torch import torch_namespace
from dlc.compiler.pipeline import compile_file, default_graph

SPECS = {
    # numbered labels: the label's pieces in __init__'s and forward's names (`self.start`)
    "numbered_labels": """
block Stack(n, start=1) {
  input x
  for i in range(n) {
    x = x -> layer{i + start}: linear(6) -> relu
  }
  output x
}
block Grown(n) {
  input x
  for i in range(n) {
    x = x -> denselayer{i + 1}: Dense(3)
  }
  output x
}
block Dense(growth) {
  input x
  new = x -> conv: conv2d(growth, 3, padding=1)
  output y = (x, new) -> concat(dim=1)
}
network N {
  input x: f32[B, 4, 5, 5]
  h = x -> features: Grown(3) -> flatten -> linear(6) -> stack: Stack(2, start=3) -> Stack(1)
  output h
}
""",
}


def _compile(tmp_path, name):
    path = tmp_path / f"{name}.arch"
    path.write_text(SPECS[name])
    result = compile_file(path)
    result.raise_for_errors()
    return path, default_graph(result, None)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_module_weights_and_outputs_match_the_compiler(tmp_path, name):
    path, graph = _compile(tmp_path, name)
    module = getattr(torch_namespace(path), graph.name)().eval()
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {w.name: w.shape for w in graph.weights}
    env = {**dict(graph.dim_examples), "B": 3}
    inputs = [torch.randn(*[d.evaluate(env) for d in graph.values[v].type.shape]) for _, v in graph.inputs]
    with torch.no_grad():
        outs = module(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    for (_, vid), out in zip(graph.outputs, outs, strict=True):
        assert tuple(out.shape) == tuple(d.evaluate(env) for d in graph.values[vid].type.shape)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_onnx_runtime_matches_the_module(tmp_path, name):
    path, _ = _compile(tmp_path, name)
    onnx_vs_torch(path, batches=(1, 3))


def test_numbered_labels_are_f_strings_in_both_methods(tmp_path):
    path, _ = _compile(tmp_path, "numbered_labels")
    from dlc.compiler.emit.torch import torch_source

    source = torch_source(path)
    assert 'self.add_module(f"layer{i + start}", nn.Linear(' in source
    assert 'x = getattr(self, f"layer{i + self.start}")(x)' in source
    assert 'self.add_module(f"denselayer{i + 1}", Dense(3, in_channels=x_channels))' in source
    assert 'x_channels = x_channels + 3' in source  # the child's output size in this class's terms
