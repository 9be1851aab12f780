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
    # free parameter tensors: a class token broadcast to the batch, a position embedding, a layer scale
    "parameters": """
block LayerScale(d, init=1e-6) {
  input x
  param gamma: f32[d] = init
  output y = (x, gamma) -> mul
}
block Encoder(seq, d) {
  input x
  param pos_embedding: f32[1, seq, d] = normal(std=0.02)
  h = (x, pos_embedding) -> add -> ln: layernorm -> scale: LayerScale(d, 0.5)
  output h
}
network N(d=8) {
  input x: f32[B, 3, 8, 8]
  param class_token: f32[1, 1, d]
  param bias: f32[1, 1, 1] = uniform(-0.5, 0.5)
  h = x -> conv_proj: conv2d(d, 4, stride=4) -> flatten(2) -> permute([0, 2, 1])  # (B, 4, d)
  c = (class_token, h) -> expand
  h = (c, h) -> concat(dim=1) -> encoder: Encoder(5, d)
  bias = (bias, h) -> expand(dims=[0, 1])
  output y = (h, bias) -> add -> select(1, 0) -> head: linear(3)
}
""",
    # a parameter tensor in a branch: built, and read, only where the branch is taken
    "parameter_in_branch": """
block Block(d, layer_scale=true) {
  input x
  h = x -> fc: linear(d)
  if layer_scale {
    param gamma: f32[d] = 1e-6
    h = (h, gamma) -> mul
  }
  output y = (x, h) -> add
}
network N {
  input x: f32[B, 8]
  output y = x -> first: Block(8) -> second: Block(8, false)
}
""",
    # `* n` over several inputs: each copy's output is the next one's first input, the rest stay
    "repeat_two_inputs": """
block Cross(d) {
  input x, memory
  a = (x, memory) -> attn: mha(2)
  output y = (x, a) -> add -> norm: layernorm
}
block Decoder(n, d) {
  input x, memory
  output y = (x, memory) -> layers: Cross(d) * n
}
network N {
  input x: f32[B, T=5, 8]
  input memory: f32[B, S=7, 8]
  y = (x, memory) -> decoder: Decoder(3, 8)
  q = (y, memory) -> mixers: mha(2) * 2
  s = (q, y) -> add * 2
  r = s -> tanh * 2
  output out = (s, r) -> add
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


def test_repeated_two_input_stages_loop_over_a_module_list(tmp_path):
    from dlc.compiler.emit.torch import torch_source

    path, graph = _compile(tmp_path, "repeat_two_inputs")
    source = torch_source(path)
    assert "self.layers = nn.ModuleList(Cross(d) for _ in range(n))" in source
    assert "        y = x\n        for layer in self.layers:\n            y = layer(y, memory)" in source
    assert "            q = layer(q, memory)" in source and "for _ in range(2):\n            s = s + y" in source
    assert "        r = s\n        for _ in range(2):\n            r = torch.tanh(r)" in source  # `s` stays for `s + r`
    memory = dict(graph.inputs)["memory"]
    cross = [n for n in graph.nodes if n.path.endswith(".attn")]
    assert [n.path for n in cross] == ["decoder.layers.0.attn", "decoder.layers.1.attn", "decoder.layers.2.attn"]
    assert all(n.inputs[1] == memory for n in cross)
    y = next(n.outputs[0] for n in graph.nodes if n.path == "decoder.layers.2.norm")
    assert [n.inputs[1] == y for n in graph.nodes if n.op == "add" and not n.trace] == [True, True, False]


def test_parameter_tensors_are_named_counted_and_written_as_nn_parameters(tmp_path):
    from dlc.compiler.emit.torch import torch_source

    path, graph = _compile(tmp_path, "parameters")
    shapes = {w.name: w.shape for w in graph.weights}
    assert {k: v for k, v in shapes.items() if "." not in k or "gamma" in k or "pos" in k} == {
        "class_token": (1, 1, 8), "bias": (1, 1, 1), "encoder.pos_embedding": (1, 5, 8),
        "encoder.scale.gamma": (8,)}
    source = torch_source(path)
    assert "self.class_token = nn.Parameter(torch.zeros(1, 1, d))" in source
    assert "self.bias = nn.Parameter(torch.empty(1, 1, 1).uniform_(-0.5, 0.5))" in source
    assert "self.pos_embedding = nn.Parameter(torch.empty(1, seq, d).normal_(std=0.02))" in source
    assert "self.gamma = nn.Parameter(torch.full((d,), init))" in source
    assert "c = self.class_token.expand(h.shape[0], -1, -1)" in source  # as torchvision's ViT writes it
    assert "bias = self.bias" in source  # the name is bound again: a local first
    module = getattr(torch_namespace(path), "N")()
    assert torch.equal(module.class_token, torch.zeros(1, 1, 8))
    assert torch.equal(module.encoder.scale.gamma, torch.full((8,), 0.5))
    assert 0.005 < module.encoder.pos_embedding.std().item() < 0.04
    assert module.bias.abs().max().item() <= 0.5
    onnx = onnx_vs_torch(path, batches=(2,))
    assert {"class_token", "bias", "encoder.pos_embedding", "encoder.scale.gamma"} <= {
        t.name for t in onnx.graph.initializer}


def test_numbered_labels_are_f_strings_in_both_methods(tmp_path):
    path, _ = _compile(tmp_path, "numbered_labels")
    from dlc.compiler.emit.torch import torch_source

    source = torch_source(path)
    assert 'self.add_module(f"layer{i + start}", nn.Linear(' in source
    assert 'x = getattr(self, f"layer{i + self.start}")(x)' in source
    assert 'self.add_module(f"denselayer{i + 1}", Dense(3, in_channels=x_channels))' in source
    assert 'x_channels = x_channels + 3' in source  # the child's output size in this class's terms


def test_a_layer_chosen_by_a_conditional_is_refused_not_miswritten(tmp_path):
    from dlc.compiler.diagnostics import CompileError
    from dlc.compiler.emit.torch import torch_source

    path = tmp_path / "choice.arch"
    path.write_text("network N(v2=true) {\n  input x: f32[B, 4]\n  let act = relu6() if v2 else hardswish()\n"
                    "  output y = x -> act\n}\n")
    graph = compile_file(path).graphs["N"]
    assert [n.op for n in graph.nodes] == ["relu6"]  # the compiler takes the branch
    with pytest.raises(CompileError) as err:  # the API's form of the emitter's refusal: located
        torch_source(path)
    (diag,) = err.value.diagnostics
    assert diag.code == "E0601" and "conditional expression" in diag.message and "choice.arch:3:13" in str(err.value)
