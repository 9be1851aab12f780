"""Training starts from the initialization the spec declares (`@init`), seeded: N(0, 0.01), Xavier and
Kaiming weights with zero biases, PyTorch's defaults without `@init`; and dropout is on while training,
off in evaluation."""
from __future__ import annotations

import math

import pytest
import torch

from dlc.compiler.pipeline import compile_file
from dlc.runtime.train.modules import build_steps

WIDTH_IN, WIDTH_OUT = 256, 512

SPEC = """
{decorator}
network Wide {{
  input x: f32[B, 1, 16, 16]
  output y = x -> flatten -> fc: linear({out}) -> dropout(0.5)
}}
train T {{
  data digits(size=16)
  model net = Wide()
  optimizer sgd(lr=0.1)
  input image: f32[B, 1, 16, 16]
  output loss = image -> net -> mean([0, 1])
}}
"""


def _model(tmp_path, decorator: str, seed: int = 0):
    path = tmp_path / "init.arch"
    path.write_text(SPEC.format(decorator=decorator, out=WIDTH_OUT))
    result = compile_file(path)
    assert result.ok, [d.message for d in result.diagnostics]
    torch.manual_seed(seed)
    steps, models = build_steps(result, result.trains["T"])
    return steps["main"], models["net"]


# scheme -> the weight std it should give a 256 -> 512 linear layer
CASES = {
    '@init("normal", std=0.01)': 0.01,
    '@init("xavier_uniform")': math.sqrt(2.0 / (WIDTH_IN + WIDTH_OUT)),
    '@init("xavier_normal")': math.sqrt(2.0 / (WIDTH_IN + WIDTH_OUT)),
    '@init("kaiming_normal", nonlinearity="relu")': math.sqrt(2.0 / WIDTH_IN),
    "": 1.0 / math.sqrt(3 * WIDTH_IN),  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
}


@pytest.mark.parametrize("decorator", list(CASES))
def test_the_declared_init_is_the_starting_point(tmp_path, decorator):
    _, net = _model(tmp_path, decorator)
    weight, bias = net.fc.weight.detach(), net.fc.bias.detach()
    assert weight.shape == (WIDTH_OUT, WIDTH_IN)
    assert float(weight.std()) == pytest.approx(CASES[decorator], rel=0.05)
    assert abs(float(weight.mean())) < 0.1 * CASES[decorator]
    if decorator:  # the schemes zero the biases; PyTorch's default draws them
        assert torch.count_nonzero(bias) == 0
    else:
        assert torch.count_nonzero(bias) == WIDTH_OUT


def test_the_init_is_seeded(tmp_path):
    decorator = '@init("kaiming_normal", nonlinearity="relu")'
    a, b, c = (_model(tmp_path, decorator, seed)[1].fc.weight for seed in (0, 0, 1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_dropout_is_on_in_training_and_off_in_evaluation(tmp_path):
    step, net = _model(tmp_path, '@init("normal", std=0.01)')
    x = torch.rand(8, 1, 16, 16)
    step.train()
    dropped = net(x)
    assert 0.3 < float((dropped == 0).float().mean()) < 0.7
    step.eval()
    assert torch.equal(net(x), net(x))
    assert float((net(x) == 0).float().mean()) < 0.01
