"""Definitions with several steps: a GAN's discriminator and generator, alternating, each with its own
optimizer over its own model, the generator's step on every second batch; statements outside the
steps are shared; gradients of one step never leak into another's update."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from dlc.cli import main
from dlc.compiler.pipeline import compile_file

GAN = """
network G {
  input z: f32[B, 16]
  output img = z -> fc: linear(64) -> sigmoid -> reshape([-1, 1, 8, 8])
}
network D {
  input img: f32[B, 1, 8, 8]
  output logit = img -> flatten -> fc: linear(1)
}
# The non-saturating GAN: D minimizes softplus(-D(x)) + softplus(D(G(z))), G minimizes softplus(-D(G(z))).
train GAN {
  data digits(size=8)
  model g = G()
  model d = D()
  config batch=64, epochs=1, seed=0
  input image: f32[B, 1, 8, 8]
  z = image -> noise([16])
  fake = z -> g
  step discriminator {
    optimizer adam(lr=2e-4, betas=[0.5, 0.999]) for d
    real_term = image -> d -> scale(-1.0) -> softplus -> mean([0, 1])
    fake_term = fake -> detach -> d -> softplus -> mean([0, 1])
    output loss = (real_term, fake_term) -> add
  }
  step generator(every=2) {
    optimizer adam(lr=2e-4, betas=[0.5, 0.999]) for g
    output loss = fake -> d -> scale(-1.0) -> softplus -> mean([0, 1])
  }
}
"""


def test_two_steps_alternate_with_their_own_optimizers(tmp_path, capsys):
    spec = tmp_path / "gan.arch"
    spec.write_text(GAN)
    plan = compile_file(spec).trains["GAN"]
    assert [(st.name, st.every, st.optimizer.models) for st in plan.steps] == [
        ("discriminator", 1, ("d",)), ("generator", 2, ("g",))]
    assert [st.graph.name for st in plan.steps] == ["GAN_discriminator", "GAN_generator"]

    torch.manual_seed(0)
    from dlc.runtime.train.modules import build_steps
    steps, models = build_steps(compile_file(spec), plan)
    assert steps["discriminator"].g is steps["generator"].g is models["g"]  # one model, shared
    start = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in models.items()}

    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--quiet"]) == 0
    batches = 1257 // 64
    state = torch.load(run / "last.state.pt", weights_only=True)
    steps_taken = {name: {int(s["step"]) for s in opt["state"].values()} for name, opt in state["optimizers"].items()}
    assert steps_taken == {"discriminator": {batches}, "generator": {(batches + 1) // 2}}

    # one weight file per model, each under its network's own names, and each model trained
    g, d = load_file(str(run / "last.g.safetensors")), load_file(str(run / "last.d.safetensors"))
    assert set(g) == set(start["g"]) == {"fc.weight", "fc.bias"} and set(d) == set(start["d"])
    for name, trained in (("g", g), ("d", d)):
        for key, value in trained.items():
            assert not torch.equal(value, start[name][key]), f"{name}.{key} did not train"
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                 if json.loads(line)["kind"] == "epoch"]
    assert set(record["train"]) == {"discriminator.loss", "generator.loss"}
    assert set(record["val"]) == {"discriminator.loss", "generator.loss"}


def test_a_step_updates_only_its_models(tmp_path):
    """Each step's optimizer holds its own model's parameters only, and each steps once a batch."""
    spec = tmp_path / "gan.arch"
    spec.write_text(GAN.replace("step generator(every=2)", "step generator(every=1)"))
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--quiet", "--max-steps", "1"]) == 0
    state = torch.load(run / "last.state.pt", weights_only=True)
    assert {int(s["step"]) for s in state["optimizers"]["generator"]["state"].values()} == {1}
    assert {int(s["step"]) for s in state["optimizers"]["discriminator"]["state"].values()} == {1}
    # only the generator's parameters are in the generator's optimizer, and the reverse
    assert len(state["optimizers"]["generator"]["param_groups"][0]["params"]) == 2
    assert len(state["optimizers"]["discriminator"]["param_groups"][0]["params"]) == 2


def test_a_gan_under_two_processes_trains_what_one_does(tmp_path):
    """Each step's gradients are averaged over the processes: with the generator's input made from the
    images (no noise, which each process draws for itself) and SGD, 2 processes end where 1 does."""
    spec = tmp_path / "gan.arch"
    spec.write_text(GAN.replace("z = image -> noise([16])", "z = image -> flatten -> slice(1, 24, 40)")
                    .replace("adam(lr=2e-4, betas=[0.5, 0.999])", "sgd(lr=0.05, momentum=0.5)"))
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", str(spec), "-o", str(two), "--quiet", "--nproc", "2"]) == 0
    assert main(["train", str(spec), "-o", str(one), "--quiet"]) == 0
    for model in ("g", "d"):
        a, b = load_file(str(one / f"last.{model}.safetensors")), load_file(str(two / f"last.{model}.safetensors"))
        assert sorted(a) == sorted(b)
        for key in sorted(a):
            assert (a[key] - b[key]).abs().max() < 1e-5, (model, key)
    records = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (one, two)]
    for x, y in zip(*records, strict=True):
        assert x["kind"] == y["kind"]
        if x["kind"] == "epoch":
            assert set(x["train"]) == {"discriminator.loss", "generator.loss"}
            assert x["train"] == pytest.approx(y["train"], rel=1e-4)
