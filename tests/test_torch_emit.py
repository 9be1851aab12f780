"""The PyTorch emitter, cross-checked against the compiler for every zoo model: the generated
module's state_dict equals the compiler's weights (names, shapes, parameter count; a tied layer's
own key aliases the weight it ties to), a forward pass on random inputs gives the IR's output
shapes, every named submodule's output has its IR shape (forward hooks), and the program
`torch.export` makes of the inference graph computes what the eager module does."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import ROOT, SPEC
from dlc.compiler.emit.torch import torch_namespace
from dlc.compiler.pipeline import compile_file

CASES = [(spec.name, name) for spec in sorted(SPEC.glob("*.arch")) for name in compile_file(spec).graphs]


def _inputs(graph, batch: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    env = {**dict(graph.dim_examples), "B": batch}
    for seq in ("T", "S"):  # short sequences keep the checks fast; the rules are the same
        if seq in env:
            env[seq] = min(env[seq], 16)
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


def _tie_aliases(graph) -> dict[str, str]:
    """The state_dict keys a module may hold beside the IR's weights: a tied layer's own name for
    the weight it reuses (`head.weight` -> `wte.weight`). A shared layer applied again keeps its
    `weight_scope`, so its reuse names the same keys and adds none."""
    return {f"{node.weight_scope}.{local}" if node.weight_scope else local: full
            for node in graph.nodes for local, full in node.ties}


@pytest.mark.parametrize(("spec", "name"), CASES, ids=[f"{s}:{n}" for s, n in CASES])
def test_generated_module_matches_the_compiler(namespaces, spec, name):
    graph = compile_file(SPEC / spec).graphs[name]
    module = _module(namespaces, spec, name).eval()
    state = module.state_dict()
    expected = {w.name: w.shape for w in graph.weights}
    aliases = _tie_aliases(graph)
    assert state.keys() - expected.keys() == aliases.keys()
    assert {k: tuple(v.shape) for k, v in state.items() if k not in aliases} == expected
    for alias, tied_to in aliases.items():  # the same tensor under both names, not a copy
        assert tied_to in expected and state[alias].shape == state[tied_to].shape, (alias, tied_to)
        assert state[alias].data_ptr() == state[tied_to].data_ptr(), f"`{alias}` does not alias `{tied_to}`"
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
    for (_, vid), out in zip(graph.outputs, _as_tuple(outs), strict=True):
        assert tuple(out.shape) == tuple(d.evaluate(env) for d in graph.values[vid].type.shape)
    by_path = {n.path: n for n in graph.nodes}
    checked = set()
    for path, shape in seen.items():
        node = by_path.get(path)
        if node is not None and len(node.outputs) == 1:
            assert shape == tuple(d.evaluate(env) for d in graph.values[node.outputs[0]].type.shape), path
            checked.add(path)
    # every single-output layer that owns weights is a submodule under its IR path, and ran; a
    # parameter tensor (`param`) is an nn.Parameter under its weight name instead
    by_id = {n.id: n for n in graph.nodes}
    owners = {by_id[w.owner].path for w in graph.weights if len(by_id[w.owner].outputs) == 1
              and by_id[w.owner].op != "parameter"}
    for w in graph.weights:
        if by_id[w.owner].op == "parameter":
            assert isinstance(module.get_parameter(w.name), torch.nn.Parameter), w.name
    assert owners <= checked, sorted(owners - checked)
    assert checked or not graph.weights


@pytest.mark.parametrize(("spec", "name"), CASES, ids=[f"{s}:{n}" for s, n in CASES])
def test_exported_program_computes_what_eager_does(namespaces, spec, name):
    graph = compile_file(SPEC / spec).graphs[name]
    module = _module(namespaces, spec, name).eval()
    inputs, _ = _inputs(graph, batch=2)
    exported = torch.export.export(module, tuple(inputs)).module()
    fresh, _ = _inputs(graph, batch=2, seed=1)  # not the tracing inputs: nothing may be baked in
    with torch.no_grad():
        expected, got = _as_tuple(module(*fresh)), _as_tuple(exported(*fresh))
    for (out, _), e, g in zip(graph.outputs, expected, got, strict=True):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-6, msg=lambda m, out=out: f"{name}.{out}: {m}")


def _as_tuple(outs) -> tuple:
    return outs if isinstance(outs, tuple) else (outs,)


def test_generated_directory_is_current(tmp_path):
    """`dlc emit torch spec/*.arch -o generated/` reproduces the committed files byte for byte."""
    from dlc.cli import main

    specs = sorted(str(p.relative_to(ROOT)) for p in SPEC.glob("*.arch"))
    assert main(["emit", "torch", *specs, "-o", str(tmp_path)]) == 0
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.py")}
    committed = {p.name: p.read_text() for p in (ROOT / "generated").glob("*.py")}
    assert fresh.keys() == committed.keys() == {f"{Path(s).stem}.py" for s in specs}
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"regenerate with `dlc emit torch spec/*.arch -o generated/`: {stale}"


def test_a_spec_with_errors_emits_nothing(tmp_path):
    from dlc.cli import main

    out = tmp_path / "out"
    status = main(["emit", "torch", "spec/lenet5.arch", "tests/diagnostics/shape_mismatch.arch", "-o", str(out)])
    assert status == 1
    assert not out.exists()  # not even the good spec's file: all or nothing


def test_python_api_builds_modules_in_memory():
    import dlc

    net = dlc.torch_module("spec/resnet18.arch", num_classes=10)
    assert net.fc.out_features == 10
    assert sum(p.numel() for p in net.parameters()) == 11_689_512 - 990 * 513
    disc = dlc.torch_module("spec/dcgan.arch", model="Discriminator")
    assert type(disc).__name__ == "Discriminator"
    assert "class ResNet18(nn.Module)" in dlc.torch_source("spec/resnet18.arch")


def test_init_convention_follows_the_spec():
    """DCGAN's @init("normal", std=0.02): conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)."""
    import dlc

    torch.manual_seed(0)
    gen = dlc.torch_module("spec/dcgan.arch", model="Generator")
    conv = torch.cat([m.weight.flatten() for m in gen.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    bn = torch.cat([m.weight.flatten() for m in gen.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    assert abs(bn.mean().item() - 1.0) < 0.01
    plain = dlc.torch_module("spec/resnet18.arch")  # PyTorch's default (Kaiming-uniform) init
    assert plain.conv1.weight.std().item() > 0.03


def test_shared_and_tied_weights_are_real_parameter_sharing():
    import dlc

    gpt = dlc.torch_module("spec/gpt2.arch", layers=2)
    assert gpt.lm_head.weight is gpt.wte.weight
    siamese = dlc.torch_module("spec/siamese.arch", model="SiameseCosine")
    graph = compile_file("spec/siamese.arch").graphs["SiameseCosine"]
    assert sum(p.numel() for p in siamese.parameters()) == sum(math.prod(w.shape) for w in graph.weights)
