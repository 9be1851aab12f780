"""A generated class is right for every value of its parameters, not only the spec's defaults.

The emitter checks each size it writes against the IR, but the IR is compiled for the network's
default parameters: a size that merely equals what the defaults give (PixelCNN's residual block
written with 128 input channels where it sees 2h) passes that check and builds a wrong module for
`PixelCNN(h=32)`. So, for every zoo network and every integer parameter whose value can change
(doubled, or plus one, where the spec still compiles), the emitted source must be the same but for
the parameter's default itself -- and the module built from it with the new value must have the
weights the IR compiled with that value has.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import SPEC
from dlc.compiler.emit.torch import emit_torch
from dlc.compiler.pipeline import compile_file
from dlc.compiler.syntax import ast


def _int_params(path: Path) -> list[tuple[str, str, int]]:
    result = compile_file(path)
    out = []
    for ref in result.resolved.networks():
        for p in ref.node.params:
            if isinstance(p.default, ast.Literal) and type(p.default.value) is int:
                out.append((ref.name, p.name, p.default.value))
    return out


CASES = [(path.name, net, name, value) for path in sorted(SPEC.glob("*.arch")) for net, name, value in _int_params(path)]


def _with_default(text: str, network: str, name: str, value: int) -> str:
    """The spec with `network`'s default for `name` changed to `value` (in its header only)."""
    header = re.search(rf"network\s+{network}\s*\((.*?)\)\s*\{{", text, re.S)
    params = re.sub(rf"(\b{name}\s*=\s*)-?\d+\b", rf"\g<1>{value}", header.group(1), count=1)
    return text[:header.start(1)] + params + text[header.end(1):]


def _normalized(source: str, name: str) -> list[str]:
    """The source without its header comment and without the parameter's default values."""
    lines = source.splitlines()[2:]
    return [re.sub(rf"\b{name}=-?\d+\b", f"{name}=<default>", line) for line in lines]


@pytest.mark.parametrize("spec, network, name, value", CASES, ids=[f"{c[1]}.{c[2]}" for c in CASES])
def test_the_class_does_not_depend_on_the_value_of_a_parameter(spec, network, name, value):
    path = SPEC / spec
    text = path.read_text()
    base = emit_torch(compile_file(path, network))  # the network alone: the file's `train` definitions
    for new in (2 * value, value + 1):                # are written for its defaults
        variant = compile_file(path, network, text=_with_default(text, network, name, new))
        if not variant.ok:
            continue  # this value breaks an assert or a shape rule: try the next
        source = emit_torch(variant)
        assert _normalized(source, name) == _normalized(base, name), f"{network}({name}={new})"
        graph = variant.graphs[network]
        namespace: dict = {}
        exec(compile(base, f"<{spec}>", "exec"), namespace)  # noqa: S102 - our own generated code
        with torch.device("meta"):
            module = namespace[network](**{name: new})
        assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == \
            {w.name: w.shape for w in graph.weights} | _tie_aliases(graph, module)
        return
    pytest.fail(f"no other value of {network}.{name} compiles")  # every zoo parameter can change


def _tie_aliases(graph, module) -> dict:
    """Keys a tied weight adds beside the IR's names (the same tensor under the tying layer's name)."""
    out = {}
    state = module.state_dict()
    for node in graph.nodes:
        for local, full in node.ties:
            key = f"{node.weight_scope}.{local}"
            if key in state:
                out[key] = tuple(state[key].shape)
    return out


@pytest.mark.parametrize("spec, params, shape", [
    ("pixelcnn.arch", {"h": 32, "n_blocks": 2}, (1, 1, 28, 28)),
    ("densenet121.arch", {"growth": 12, "blocks": [2, 2, 2, 2]}, (1, 3, 224, 224)),
    ("digits_cnn.arch", {"widths": [8, 16], "num_classes": 3}, (2, 1, 8, 8)),
], ids=["pixelcnn", "densenet121", "digits_cnn"])
def test_torch_module_with_parameters_is_the_module_the_ir_compiles(spec, params, shape):
    """dlc.torch_module(spec, **params) compiles the spec with those parameters and builds that
    module: its weights are the compiled graph's, and it runs."""
    import dlc

    graph = compile_file(SPEC / spec, params=params).graphs[compile_file(SPEC / spec).resolved.networks()[-1].name]
    module = dlc.torch_module(SPEC / spec, **params).eval()
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {w.name: w.shape for w in graph.weights}
    with torch.no_grad():
        out = module(torch.zeros(shape))
    (_, vid), = graph.outputs
    assert list(out.shape[1:]) == [d.value for d in graph.values[vid].type.shape[1:]]  # (B, classes) or (B, 256, 28, 28)
