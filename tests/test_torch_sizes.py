"""Sizes the PyTorch emitter tracks through loops and branches: never a stale running size."""
from __future__ import annotations

import math

import torch

from conftest import compile_text
from dlc.compiler.emit.torch import emit_torch
from dlc.compiler.errors import EmitError

# A loop over a block whose output width the emitter cannot express (Stage's width is a running
# size of its own loop): the running width `h_channels` must not keep its value from before the
# loop. This built a last conv with 8 input channels instead of 24 (10,116 parameters, forward fails).
STALE_AFTER_LOOP = """
block Unit(c) { input x
  y = x -> conv2d(c, 3, padding=1)
  output out = (y, x) -> add }
block Stage(cin, c, n) { input x
  h = x -> conv2d(c, 3, padding=1)
  for i in range(1, n) { h = h -> Unit(c) }
  output h }
block Features(settings) { input x
  h = x -> conv2d(settings[0][0], 3, padding=1)
  for s in settings { h = h -> Stage(s[0], s[1], s[2]) }
  output y = h -> conv2d(4, 1) }
network N { input x: f32[B, 3, 8, 8]
  output y = x -> Features([[8, 16, 1], [16, 24, 2]]) }
"""

# The same, but the loop body reads the running width before the block that loses it: the
# second iteration's conv would be built with the first iteration's input width. (Stage's loop
# widens its tensor: a width its loop leaves unchanged would be expressible, `c`.)
STALE_INSIDE_LOOP = """
block Stage(cin, c, n) { input x
  h = x -> conv2d(c, 3, padding=1)
  for i in range(1, n) { h = h -> conv2d(c + i, 3, padding=1) }
  output h }
block Features(settings) { input x
  h = x -> conv2d(8, 3, padding=1)
  for s in settings { h = h -> conv2d(s[0], 1) -> Stage(s[0], s[1], s[2]) }
  output h }
network N { input x: f32[B, 3, 8, 8]
  output y = x -> Features([[16, 16, 1], [24, 24, 2]]) }
"""


def _module(result, name: str):
    namespace: dict = {}
    exec(compile(emit_torch(result), "<test>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace[name]()


def test_a_size_a_loop_cannot_express_is_not_read_stale_after_it(tmp_path):
    result = compile_text(STALE_AFTER_LOOP, tmp_path)
    graph = result.graphs["N"]
    module = _module(result, "N")
    assert sum(p.numel() for p in module.parameters()) == sum(math.prod(w.shape) for w in graph.weights) == 10_180
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {w.name: w.shape for w in graph.weights}
    assert tuple(module(torch.zeros(2, 3, 8, 8)).shape) == (2, 4, 8, 8)


def test_a_size_read_in_the_loop_that_loses_it_is_refused(tmp_path):
    result = compile_text(STALE_INSIDE_LOOP, tmp_path)
    assert result.ok
    try:
        emit_torch(result)
    except EmitError as err:
        assert err.diag.code == "E0601"
        assert "dim 1 of `h`" in err.diag.message
        assert err.diag.primary.span.line == 8  # the `for` of Features
    else:
        raise AssertionError("the emitter wrote a module whose second conv reads a stale width")
