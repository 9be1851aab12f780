"""Objectives with input gradients (compiler/ops/gradient.py) and weight clipping: `grad` against
torch.autograd, in value and as a differentiable term (a WGAN-GP penalty reaches the critic's
weights as the hand-written penalty does); `norm`, `interpolate_random`; `clip_weights` holding
after training steps; the zoo's WGAN, WGAN-GP and adversarial definitions checked and trained a
few steps; FGSM accuracy computed at evaluation (under the loop's torch.no_grad); the ONNX refusal
and the E0715 diagnostic."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import compile_text
from dlc.cli import main
from dlc.compiler.emit.torch.api import torch_module

NET = """
network N {
  input x: f32[B, 3, 4]
  h = x -> flatten -> fc: linear(5) -> tanh -> out: linear(1)
  output g = (h, x) -> grad
}
"""

PENALTY = """
network Critic {
  input img: f32[B, 1, 4, 4]
  output score = img -> flatten -> fc1: linear(8) -> tanh -> fc2: linear(1)
}
network P {
  input real: f32[B, 1, 4, 4], fake: f32[B, 1, 4, 4], hat: f32[B, 1, 4, 4]
  real_score = real -> critic: Critic -> mean([0, 1])
  fake_score = fake -> critic -> mean([0, 1])
  output plain = (fake_score, real_score) -> sub
  hat_score = hat -> critic
  penalty = (hat_score, hat) -> grad -> norm -> shift(-1.0) -> square -> mean([0]) -> scale(10.0)
  output with_penalty = (plain, penalty) -> add
}
"""


def _write(tmp_path, text: str, name: str = "g.arch"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grad_is_autograd_of_the_sum_and_takes_a_plain_data_tensor(tmp_path):
    module = torch_module(_write(tmp_path, NET))
    torch.manual_seed(0)
    x = torch.randn(4, 3, 4)  # a plain tensor, as data come: no requires_grad
    got = module(x)
    ref = x.clone().requires_grad_()
    h = module.out(torch.tanh(module.fc(ref.flatten(1))))
    (want,) = torch.autograd.grad(h.sum(), ref)
    assert got.shape == x.shape and not x.requires_grad
    torch.testing.assert_close(got, want)
    with torch.no_grad(), pytest.raises(RuntimeError, match="torch.enable_grad"):
        module(x)


def test_a_gradient_penalty_reaches_the_critic_as_the_hand_written_one(tmp_path):
    path = _write(tmp_path, PENALTY)
    torch.manual_seed(0)
    module = torch_module(path, "P")
    real, fake, hat = (torch.randn(6, 1, 4, 4) for _ in range(3))
    plain, with_penalty = module(real, fake, hat)
    grads = {}
    for name, loss in (("plain", plain), ("gp", with_penalty)):
        module.zero_grad()
        loss.backward(retain_graph=True)
        grads[name] = {k: p.grad.clone() for k, p in module.named_parameters()}
    # by hand: the same critic, the WGAN-GP loss of Gulrajani et al.
    critic = module.critic
    critic.zero_grad()
    x = hat.clone().requires_grad_()
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    gp = 10.0 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    (critic(fake).mean() - critic(real).mean() + gp).backward()
    for k, p in critic.named_parameters():
        torch.testing.assert_close(grads["gp"][f"critic.{k}"], p.grad)
    differ = [k for k in grads["gp"] if not torch.allclose(grads["gp"][k], grads["plain"][k])]
    assert differ, "the penalty changed no weight's gradient"


def test_norm_and_interpolate_random(tmp_path):
    text = """
network M {
  input a: f32[B, 2, 3], b: f32[B, 2, 3]
  output n = a -> norm
  output mixed = (a, b) -> interpolate_random
}
"""
    module = torch_module(_write(tmp_path, text))
    torch.manual_seed(0)
    a, b = torch.randn(5, 2, 3), torch.randn(5, 2, 3)
    n, mixed = module(a, b)
    torch.testing.assert_close(n, a.flatten(1).norm(dim=1))
    eps = (mixed - b) / (a - b)  # one eps per example, the same over its elements, in [0, 1]
    flat = eps.flatten(1)
    torch.testing.assert_close(flat, flat[:, :1].expand_as(flat), rtol=1e-4, atol=1e-4)
    assert ((flat >= 0) & (flat <= 1)).all() and flat[:, 0].std() > 0


TINY_WGAN = """
network G {
  input z: f32[B, 8]
  output img = z -> fc: linear(64) -> tanh -> reshape([-1, 1, 8, 8])
}
network D {
  input img: f32[B, 1, 8, 8]
  output score = img -> flatten -> fc1: linear(16) -> leaky_relu(0.2) -> fc2: linear(1)
}
train W {
  data digits(size=8, scale="tanh")
  model g = G()
  model critic = D()
  config batch=64, epochs=1, seed=0
  input image: f32[B, 1, 8, 8]
  fake = image -> noise([8]) -> g
  step critic {
    optimizer rmsprop(lr=5e-5, clip_weights=0.01) for critic
    real_score = image -> critic -> mean([0, 1])
    fake_score = fake -> detach -> critic -> mean([0, 1])
    output loss = (fake_score, real_score) -> sub
  }
  step generator(every=5) {
    optimizer rmsprop(lr=5e-5) for g
    output loss = fake -> critic -> mean([0, 1]) -> scale(-1.0)
  }
}
"""


def test_weight_clipping_holds_after_training_steps(tmp_path):
    spec = _write(tmp_path, TINY_WGAN)
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--quiet", "--max-steps", "6"]) == 0
    critic, g = load_file(str(run / "last.critic.safetensors")), load_file(str(run / "last.g.safetensors"))
    biggest = max(float(w.abs().max()) for w in critic.values())
    assert biggest <= 0.01 + 1e-7
    assert biggest == pytest.approx(0.01)  # the clip was hit: fresh weights are far larger
    assert max(float(w.abs().max()) for w in g.values()) > 0.05  # the generator's optimizer does not clip
    state = torch.load(run / "last.state.pt", weights_only=True)
    assert {int(s["step"]) for s in state["optimizers"]["critic"]["state"].values()} == {6}
    assert {int(s["step"]) for s in state["optimizers"]["generator"]["state"].values()} == {2}


def test_clip_weights_is_checked(tmp_path):
    result = compile_text(TINY_WGAN.replace("clip_weights=0.01", "clip_weights=-1"), tmp_path)
    (diag,) = result.diagnostics
    assert diag.code == "E0702" and "clip_weights" in diag.message and "> 0" in diag.message


@pytest.mark.parametrize("spec,name", [("spec/wgan.arch", "WGANDigits"), ("spec/wgan.arch", "WGANGPDigits"),
                                       ("spec/digits_cnn.arch", "DigitsAdversarial")])
def test_zoo_definitions_check_and_train_a_few_steps(tmp_path, spec, name):
    assert main(["check", spec]) == 0
    run = tmp_path / "run"
    assert main(["train", spec, "--train", name, "-o", str(run), "--quiet", "--max-steps", "1"]) == 0
    assert any(run.glob("last*.safetensors"))


ADVERSARIAL = """
network N {
  input x: f32[B, 1, 8, 8]
  output logits = x -> flatten -> fc: linear(10)
}
train A {
  data digits(size=8)
  model net = N()
  config batch=256, epochs=1, seed=0, best="accuracy"
  optimizer adam(lr=1e-2)
  input image: f32[B, 1, 8, 8], label: i64[B]
  logits = image -> net
  clean = (logits, label) -> cross_entropy
  step_to = (clean, image) -> grad -> sign -> scale(0.2)
  attacked = (image, step_to) -> add -> clamp(0.0, 1.0) -> detach
  attacked_logits = attacked -> net
  adversarial = (attacked_logits, label) -> cross_entropy
  output loss = (clean, adversarial) -> add
  output fgsm_accuracy = (attacked_logits, label) -> accuracy
  output accuracy = (logits, label) -> accuracy
}
"""


def test_fgsm_accuracy_is_computed_at_evaluation(tmp_path):
    spec = _write(tmp_path, ADVERSARIAL)
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    (epoch,) = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]
    for figures in (summary["test"], summary["val"], epoch["val"]):
        assert 0.0 <= figures["fgsm_accuracy"] <= 1.0
        assert figures["fgsm_accuracy"] < figures["accuracy"]  # the attack hurts a linear model


def test_grad_has_no_onnx_form_and_says_so_located(tmp_path):
    from dlc.compiler.checkpoint import random_weights
    from dlc.compiler.emit.onnx import emit_onnx
    from dlc.compiler.errors import EmitError

    result = compile_text(NET, tmp_path)
    graph = result.graphs["N"]
    with pytest.raises(EmitError) as err:
        emit_onnx(graph, random_weights(graph))
    assert err.value.diag.code == "E0602"
    assert "`grad` has no faithful ONNX form here" in err.value.diag.message
    assert err.value.diag.primary.span.line == 5


def test_a_grad_of_a_value_its_input_does_not_reach_is_e0715(tmp_path):
    text = ADVERSARIAL.replace("step_to = (clean, image)", "copy = image -> detach\n  step_to = (clean, copy)")
    result = compile_text(text, tmp_path)
    assert [d.code for d in result.diagnostics] == ["E0715"]
    assert "`copy`" in result.diagnostics[0].message
