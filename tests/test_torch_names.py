"""The generated class names its unlabeled layers as the IR does, for every parameter value.

The IR numbers a scope's unlabeled stages 0, 1, 2, ... in the order they run, through loops and
branches (passes/expand.py). Each spec here once made the PyTorch emitter write a module whose
state_dict disagreed with the IR without a word: numbers that restart in a nested loop, that
assume a branch's first pass is the loop's first, or that are a constant after a loop whose length
is a parameter. Each case is emitted once, at the spec's defaults (as `dlc emit torch` writes the
file), then built at several parameter values and compared with the IR compiled at those values:
state_dict keys and shapes, parameter count, output shapes. Where the class cannot compute a name
for every parameter value, the emitter must refuse (E0601 at the stage), never guess.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import random_inputs
from dlc.compiler.emit.torch import emit_torch
from dlc.compiler.errors import EmitError
from dlc.compiler.passes.cost import count_costs
from dlc.compiler.pipeline import compile_file

NESTED_RANGES = """
network NestedRanges(m=2, width=4) {
  input x: f32[B, 3, 8, 8]
  h = x -> stem: conv2d(width, 1)
  for k in range(m) {
    for j in range(2) {
      h = h -> conv2d(width, 3, padding=1)
    }
  }
  h = h -> conv2d(width, 1)
  output y = h -> head: conv2d(3, 1)
}
"""

BRANCHES_IN_LOOP = """
network BranchesInLoop(n=3, width=4) {
  input x: f32[B, 3, 8, 8]
  h = x -> conv2d(width, 1)
  for i in range(n) {
    if i == 0 {
      h = h -> conv2d(width, 3, padding=1)
    } else {
      h = h -> conv2d(width, 1)
    }
  }
  output y = h -> head: conv2d(3, 1)
}
"""

AFTER_LOOP = """
network AfterLoop(n=2, width=4) {
  input x: f32[B, 3, 8, 8]
  h = x -> stem: conv2d(width, 1)
  for i in range(n) {
    h = h -> conv2d(width, 3, padding=1)
  }
  h = h -> conv2d(2 * width, 1)
  output y = h -> head: conv2d(3, 1)
}
"""

AFTER_LIST_LOOP = """
block Unit(c) {
  input x
  output y = x -> conv2d(c, 3, padding=1) -> relu
}

network AfterListLoop(widths=[4, 8], classes=3) {
  input x: f32[B, 3, 8, 8]
  h = x -> stem: conv2d(4, 1)
  for c in widths {
    h = h -> unit{c}: Unit(c)
  }
  h = h -> conv2d(8, 1)
  output y = h -> head: conv2d(classes, 1)
}
"""

BRANCH = """
network Branch(deep=true, width=4) {
  input x: f32[B, 3, 8, 8]
  h = x -> conv2d(width, 1)
  if deep {
    h = h -> conv2d(width, 3, padding=1) -> conv2d(width, 1)
  }
  h = h -> conv2d(width, 1)
  output y = h -> head: conv2d(3, 1)
}
"""

BRANCH_BLOCK = """
block Maybe(c, deep) {
  input x
  h = x -> conv2d(c, 1)
  if deep {
    h = h -> conv2d(c, 3, padding=1)
  }
  h = h -> conv2d(c, 1)
  output y = h -> head: conv2d(c, 1)
}

network BranchBlock(width=4) {
  input x: f32[B, 3, 8, 8]
  output y = x -> Maybe(width, true) -> Maybe(2 * width, false)
}
"""

INLINE_PADDING = """
block ConvBN(cout, kernel=3, stride=1) {
  input x
  output y = x -> conv2d(cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=false)
               -> batchnorm2d -> relu
}

network InlinePadding(width=4, k=3) {
  input x: f32[B, 3, 16, 16]
  output y = x -> ConvBN(width, k) -> ConvBN(2 * width, 1) -> ConvBN(width, 3, stride=2)
}
"""

# The class is right for every value: (spec, network, parameter values to build it with).
ACCEPTED = [
    ("nested_ranges", NESTED_RANGES, "NestedRanges", [{}, {"m": 1}, {"m": 3}, {"m": 0}]),
    ("branches_in_loop", BRANCHES_IN_LOOP, "BranchesInLoop", [{}, {"n": 1}, {"n": 4}, {"width": 6}]),
    ("after_loop", AFTER_LOOP, "AfterLoop", [{}, {"n": 0}, {"n": 1}, {"n": 5}]),
    ("after_list_loop", AFTER_LIST_LOOP, "AfterListLoop", [{}, {"widths": [4]}, {"widths": [2, 3, 5]}]),
    ("branch", BRANCH, "Branch", [{}, {"deep": False}, {"width": 2}]),
    ("branch_block", BRANCH_BLOCK, "BranchBlock", [{}, {"width": 3}]),
    ("inline_padding", INLINE_PADDING, "InlinePadding", [{}, {"k": 1}, {"k": 5}, {"width": 2}]),
]


@pytest.mark.parametrize("text, network, variants", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_the_module_is_the_ir_at_every_parameter_value(tmp_path, text, network, variants):
    path = tmp_path / "names.arch"
    path.write_text(text)
    namespace: dict = {}
    exec(compile(emit_torch(compile_file(path, network)), str(path), "exec"), namespace)  # noqa: S102 - ours
    for params in variants:
        result = compile_file(path, network, params=params or None)
        result.raise_for_errors()
        graph = result.graphs[network]
        module = namespace[network](**params).eval()
        got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert got == {w.name: tuple(w.shape) for w in graph.weights}, params
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        assert trainable == count_costs(graph).trainable_params, params
        inputs = [torch.from_numpy(a) for a in random_inputs(graph, {"B": 2}).values()]
        with torch.no_grad():
            out = module(*inputs)
        (_, vid), = graph.outputs
        assert tuple(out.shape) == tuple(d.evaluate({"B": 2}) for d in graph.values[vid].type.shape), params


def test_a_number_after_a_loop_follows_the_loop_length(tmp_path):
    """`str(max(n, 0))`, not the constant the defaults give (`"2"`)."""
    source = _source_of(tmp_path, AFTER_LOOP, "AfterLoop")
    assert "self.add_module(str(max(n, 0)), nn.Conv2d(width, 2 * width, 1))" in source
    assert "getattr(self, str(max(self.n, 0)))(h)" in source


def test_a_number_after_a_branch_follows_its_condition(tmp_path):
    source = _source_of(tmp_path, BRANCH, "Branch")
    assert "self.add_module(str((2 if deep else 0) + 1), nn.Conv2d(width, width, 1))" in source
    assert "getattr(self, str((2 if self.deep else 0) + 1))(h)" in source


def test_branches_inside_a_loop_share_the_pass_number(tmp_path):
    source = _source_of(tmp_path, BRANCHES_IN_LOOP, "BranchesInLoop")
    assert source.count("self.add_module(str(i + 1), nn.Conv2d(") == 2


NESTED_VARYING = """
block Unit(c) {
  input x
  output y = x -> conv2d(c, 3, padding=1) -> relu
}

network NestedVarying(width=4) {
  input x: f32[B, 3, 8, 8]
  let settings = [[width, 2], [2 * width, 1]]
  h = x -> conv2d(width, 1)
  for c, n in settings {
    for i in range(n) {
      h = h -> Unit(c)
    }
  }
  output y = h -> head: conv2d(3, 1)
}
"""

UNEVEN_BRANCHES = """
network UnevenBranches(n=3, width=4) {
  input x: f32[B, 3, 8, 8]
  h = x
  for i in range(n) {
    if i == 0 {
      h = h -> conv2d(width, 1) -> conv2d(width, 1)
    } else {
      h = h -> conv2d(width, 1)
    }
  }
  output y = h -> head: conv2d(3, 1)
}
"""

LIST_LOOP = """
network ListLoop(widths=[4, 8]) {
  input x: f32[B, 3, 8, 8]
  h = x
  for c in widths {
    h = h -> conv2d(c, 1)
  }
  output y = h -> head: conv2d(3, 1)
}
"""

REPEAT_IN_LOOP = """
network RepeatInLoop(n=2) {
  input x: f32[B, 4]
  h = x
  for i in range(n) {
    h = h -> linear(4) * 2
  }
  output y = h -> head: linear(2)
}
"""

REBOUND = """
network Rebound(n=2) {
  input x: f32[B, 4]
  h = x -> stem: linear(4)
  for i in range(n) {
    h = h -> linear(4)
  }
  let n = 1
  output y = h -> linear(2)
}
"""

# The class cannot compute the name for every parameter value: (spec, network, line, col, words).
REFUSED = [
    ("nested_varying", NESTED_VARYING, "NestedVarying", 13, 16, "earlier passes of the loop at line 11"),
    ("uneven_branches", UNEVEN_BRANCHES, "UnevenBranches", 7, 16, "differ from pass to pass"),
    ("list_loop", LIST_LOOP, "ListLoop", 6, 14, "loop over `range(len(widths))`"),
    ("repeat_in_loop", REPEAT_IN_LOOP, "RepeatInLoop", 6, 14, "unlabeled repeated stage"),
    ("rebound", REBOUND, "Rebound", 9, 19, "`n`, which line 8 binds again"),
]


@pytest.mark.parametrize("text, network, line, col, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_name_the_class_cannot_compute_is_refused_at_its_stage(tmp_path, text, network, line, col, words):
    path = tmp_path / "names.arch"
    path.write_text(text)
    result = compile_file(path, network)
    result.raise_for_errors()  # a valid spec: the refusal is the emitter's
    with pytest.raises(EmitError) as err:
        emit_torch(result)
    diag = err.value.diag
    assert diag.code == "E0601"
    assert (Path(diag.primary.span.file).name, diag.primary.span.line, diag.primary.span.col) == \
        ("names.arch", line, col)
    assert words in diag.message
    assert "label it" in diag.message


def test_the_cli_reports_the_refusal_without_writing_a_file(tmp_path):
    from dlc.cli import main

    spec = tmp_path / "nested.arch"
    spec.write_text(NESTED_VARYING)
    out = tmp_path / "out"
    assert main(["emit", "torch", str(spec), "-o", str(out)]) != 0
    assert not out.exists() or not any(out.iterdir())


def _source_of(tmp_path: Path, text: str, network: str) -> str:
    path = tmp_path / "names.arch"
    path.write_text(text)
    return emit_torch(compile_file(path, network))
