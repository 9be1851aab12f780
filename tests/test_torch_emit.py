"""The PyTorch emitter, cross-checked against the compiler for every zoo model: the generated
module's state_dict equals the compiler's weights (names, shapes, parameter count), a forward
pass on random inputs gives the IR's output shapes, every named submodule's output has its
IR shape (forward hooks), and `torch.export` accepts the inference graph."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import ROOT, SPEC
from dlc.compiler.emit.api import torch_namespace
from dlc.compiler.pipeline import compile_file

CASES = [(spec.name, name) for spec in sorted(SPEC.glob("*.arch")) for name in compile_file(spec).graphs]
BIG = {"VGG16", "GPT2", "Bert", "AlexNet", "Transformer", "SiameseKoch", "ResNet50", "UNet"}


def _inputs(graph, batch: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    env = {**dict(graph.dim_examples), "B": batch}
    if "T" in env and graph.name in BIG:
        env["T"] = min(env["T"], 16)
    out = []
    for _, vid in graph.inputs:
        t = graph.values[vid].type
        shape = [d.evaluate(env) for d in t.shape]
        if t.dtype.startswith("i"):
            out.append(torch.randint(0, 2, shape, generator=gen))
        else:
            out.append(torch.randn(*shape, generator=gen))
    return out, env


@pytest.fixture(scope="module")
def namespaces():
    return {}


def _module(namespaces, spec, name):
    if spec not in namespaces:
        namespaces[spec] = torch_namespace(SPEC / spec)
    return getattr(namespaces[spec], name)()


@pytest.mark.parametrize(("spec", "name"), CASES, ids=[f"{s}:{n}" for s, n in CASES])
def test_generated_module_matches_the_compiler(namespaces, spec, name):
    graph = compile_file(SPEC / spec).graphs[name]
    module = _module(namespaces, spec, name).eval()
    state = module.state_dict()
    expected = {w.name: w.shape for w in graph.weights}
    tied = {k for k in state if k not in expected}
    assert {k: tuple(v.shape) for k, v in state.items() if k not in tied} == expected
    assert sum(p.numel() for p in module.parameters()) == sum(math.prod(w.shape) for w in graph.weights if w.trainable)

    inputs, env = _inputs(graph, batch=3)
    seen: dict[str, tuple[int, ...]] = {}

    def record(path):
        def hook(mod, args, out):
            if isinstance(out, torch.Tensor):
                seen.setdefault(path, tuple(out.shape))  # a hook that returns a value would replace the output
        return hook

    hooks = [m.register_forward_hook(record(path)) for path, m in module.named_modules() if path]
    with torch.no_grad():
        outs = module(*inputs)
    for h in hooks:
        h.remove()
    outs = outs if isinstance(outs, tuple) else (outs,)
    for (_, vid), out in zip(graph.outputs, outs):
        assert tuple(out.shape) == tuple(d.evaluate(env) for d in graph.values[vid].type.shape)
    by_path = {n.path: n for n in graph.nodes}
    checked = 0
    for path, shape in seen.items():
        node = by_path.get(path)
        if node is not None and len(node.outputs) == 1:
            assert shape == tuple(d.evaluate(env) for d in graph.values[node.outputs[0]].type.shape), path
            checked += 1
    assert checked > 0 or not graph.weights


@pytest.mark.parametrize(("spec", "name"), [c for c in CASES if c[1] not in BIG], ids=[f"{s}:{n}" for s, n in CASES if n not in BIG])
def test_torch_export_accepts_the_inference_graph(namespaces, spec, name):
    graph = compile_file(SPEC / spec).graphs[name]
    module = _module(namespaces, spec, name).eval()
    inputs, _ = _inputs(graph, batch=2)
    exported = torch.export.export(module, tuple(inputs))
    assert exported.graph_module is not None
