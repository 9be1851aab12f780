"""GANs on the digits: the zoo's training definitions, unrolling (`step generator(unroll=k)`), the
`gan_score` measure (a classifier's verdict on samples, an FID-style distance), two-network
checkpoints that resume and that `dlc export onnx` takes."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from dlc.cli import main
from dlc.compiler.ir.train import Option
from dlc.compiler.pipeline import compile_file
from dlc.runtime.train import data as datasets, evals
from dlc.runtime.train.measures import gan

from conftest import ROOT

NETS = """
network G(width=16) {
  input z: f32[B, 8]
  output img = z -> fc1: linear(width) -> relu -> fc: linear(64) -> tanh -> reshape([-1, 1, 8, 8])
}
network D {
  input img: f32[B, 1, 8, 8]
  output logit = img -> flatten -> fc1: linear(32) -> leaky_relu(0.2) -> fc: linear(1)
}
"""

GAN = NETS + """
train GAN {
  data digits(size=8, scale="tanh")
  model g = G(width=24)
  model d = D()
  config batch=BATCH, epochs=EPOCHS, seed=0
  input image: f32[B, 1, 8, 8]
  z = image -> noise([8])
  fake = z -> g
  step discriminator {
    optimizer adam(lr=1e-3, betas=[0.5, 0.999]) for d
    v_real = image -> d
    v_fake = fake -> detach -> d
    ones = v_real -> detach -> clamp(min=1.0, max=1.0)
    zeros = v_fake -> detach -> scale(0.0)
    real_term = (v_real, ones) -> bce_logits
    fake_term = (v_fake, zeros) -> bce_logits
    output loss = (real_term, fake_term) -> add
  }
  step generator(ARGS) {
    optimizer adam(lr=1e-3, betas=[0.5, 0.999]) for g
    v = fake -> d
    ones = v -> detach -> clamp(min=1.0, max=1.0)
    output loss = (v, ones) -> bce_logits
  }
  SHOW
}
"""

CLASSIFIER = """
network C {
  input x: f32[B, 1, 8, 8]
  output logits = x -> flatten -> fc1: linear(64) -> relu -> fc: linear(10)
}
train Cls {
  data digits(size=8)
  model net = C()
  config batch=32, epochs=4, seed=0, best="accuracy"
  optimizer adam(lr=3e-3)
  input image: f32[B, 1, 8, 8], label: i64[B]
  logits = image -> net
  output loss = (logits, label) -> cross_entropy
  output accuracy = (logits, label) -> accuracy
}
"""


def _gan(tmp_path, name="gan.arch", args="every=1", epochs=1, show="", batch=64):
    spec = tmp_path / name
    spec.write_text(GAN.replace("ARGS", args).replace("EPOCHS", str(epochs)).replace("SHOW", show)
                    .replace("BATCH", str(batch)))
    return spec


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is faster than several fighting over a busy machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A small digits classifier trained by `dlc train` (its checkpoint names spec, train and network)."""
    folder = tmp_path_factory.mktemp("cls")
    spec = folder / "cls.arch"
    spec.write_text(CLASSIFIER)
    assert main(["train", str(spec), "-o", str(folder / "run"), "--quiet"]) == 0
    return folder / "run" / "best.safetensors"


# --- the zoo's definitions -------------------------------------------------------------------------------

def test_zoo_gan_definitions_check():
    plans = {}
    for spec, name in (("dcgan", "DCGANDigits"), ("dcgan", "DCGANDigitsMinimax"), ("dcgan", "UnrolledGANDigits"),
                       ("cgan", "CGANDigits"), ("acgan", "ACGANDigits")):
        result = compile_file(ROOT / "spec" / f"{spec}.arch")
        assert result.ok, name
        plans[name] = result.trains[name]
    assert {n: [(s.name, s.unroll) for s in p.steps] for n, p in plans.items()}["UnrolledGANDigits"] == [
        ("discriminator", 0), ("generator", 5)]
    # conditional generators: the samples' grid and the score ask for the 10 classes of `label`
    for name in ("CGANDigits", "ACGANDigits"):
        assert [(s.kind, s.feeds, s.levels) for s in plans[name].shows] == [
            ("prior", ("", "label"), 10), ("gan_score", ("", "label"), 10)]
    assert [(s.kind, s.shape, s.levels) for s in plans["DCGANDigits"].shows] == [
        ("prior", (64, 1, 1), 0), ("gan_score", (64, 1, 1), 0)]


def test_minimax_and_non_saturating_generator_losses():
    """The generator losses of the notes: -log D(G(z)) (DCGANDigits) and log(1 - D(G(z))) (the minimax form)."""
    from dlc.runtime.train.modules import build_steps

    losses = {}
    for name in ("DCGANDigits", "DCGANDigitsMinimax"):
        result = compile_file(ROOT / "spec" / "dcgan.arch")
        torch.manual_seed(0)
        steps, models = build_steps(result, result.trains[name])
        image = torch.zeros(8, 1, 16, 16)
        torch.manual_seed(1)
        losses[name] = float(steps["generator"](image=image).detach())
        torch.manual_seed(1)
        p = models["d"](models["g"](torch.randn(8, 64, 1, 1))).detach()
        losses[name + " by hand"] = float(-torch.log(p).mean()) if name == "DCGANDigits" else float(torch.log(1 - p).mean())
    assert losses["DCGANDigits"] == pytest.approx(losses["DCGANDigits by hand"], rel=1e-4)
    assert losses["DCGANDigitsMinimax"] == pytest.approx(losses["DCGANDigitsMinimax by hand"], rel=1e-4)
    assert losses["DCGANDigits"] > 0 > losses["DCGANDigitsMinimax"]


def test_dcgan_discriminator_step_adds_the_r1_penalty_on_real_images():
    """r1 = gamma/2 E ||grad_x logit D(x)||^2, gamma = 0.1 (Mescheder et al. 2018), written by hand with
    autograd on D's probability's logit; the loss is the two cross-entropies plus it."""
    from dlc.runtime.train.modules import as_dict, build_steps

    result = compile_file(ROOT / "spec" / "dcgan.arch")
    plan = result.trains["DCGANDigits"]
    torch.manual_seed(0)
    steps, models = build_steps(result, plan)
    image = torch.rand(8, 1, 16, 16) * 2 - 1
    outs = as_dict([n for n, _ in plan.steps[0].graph.outputs], steps["discriminator"](image=image))
    x = image.clone().requires_grad_(True)
    p = models["d"](x)
    (grad,) = torch.autograd.grad(torch.logit(p.clamp(1e-6, 1 - 1e-6)).sum(), x)
    by_hand = 0.05 * grad.flatten(1).pow(2).sum(1).mean()
    assert float(outs["r1"]) == pytest.approx(float(by_hand), rel=1e-4) and float(by_hand) > 0
    real = float(-torch.log(p.detach()).mean())
    assert float(outs["loss"]) > real + float(by_hand)  # plus the fakes' term, which is positive


@pytest.mark.parametrize("spec,name", [("cgan", "CGANDigits"), ("acgan", "ACGANDigits")])
def test_conditional_gans_train_a_few_steps(tmp_path, spec, name):
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "spec" / f"{spec}.arch"), "--train", name, "-o", str(run), "--quiet",
                 "--max-steps", "2"]) == 0
    state = torch.load(run / "last.state.pt", weights_only=True)
    assert set(state["optimizers"]) == {"discriminator", "generator"}
    assert (run / "last.g.safetensors").exists() and (run / "last.d.safetensors").exists()


# --- unrolling ----------------------------------------------------------------------------------------------

def test_unrolling_leaves_the_discriminator_as_the_plain_step_does(tmp_path):
    runs = {}
    for args in ("every=1", "unroll=3"):
        run = tmp_path / args.replace("=", "")
        assert main(["train", str(_gan(tmp_path, f"{args[:6]}.arch", args)), "-o", str(run), "--quiet",
                     "--max-steps", "1"]) == 0
        runs[args] = run
    plain, unrolled = (load_file(str(runs[a] / "last.d.safetensors")) for a in ("every=1", "unroll=3"))
    assert set(plain) == set(unrolled)
    for key in plain:
        assert torch.equal(plain[key], unrolled[key]), key  # the copies took the unrolled steps
    states = [torch.load(runs[a] / "last.state.pt", weights_only=True)["optimizers"]["discriminator"]
              for a in ("every=1", "unroll=3")]
    for a, b in zip(states[0]["state"].values(), states[1]["state"].values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and int(a["step"]) == int(b["step"]) == 1
    g_plain, g_unrolled = (load_file(str(runs[a] / "last.g.safetensors")) for a in ("every=1", "unroll=3"))
    assert not torch.equal(g_plain["fc.weight"], g_unrolled["fc.weight"])  # against another discriminator


def test_unrolled_gan_resumes_to_the_same_weights_and_optimizer_states(tmp_path):
    spec = _gan(tmp_path, args="unroll=2", epochs=2, batch=256)  # 4 batches an epoch
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(["train", str(spec), "-o", str(whole), "--quiet"]) == 0
    assert main(["train", str(spec), "-o", str(parts), "--quiet", "--max-steps", "6"]) == 0
    assert main(["train", str(spec), "-o", str(parts), "--quiet", "--resume"]) == 0
    for model in ("g", "d"):
        a, b = load_file(str(whole / f"last.{model}.safetensors")), load_file(str(parts / f"last.{model}.safetensors"))
        assert set(a) == set(b)
        for key in a:
            assert torch.equal(a[key], b[key]), f"{model}.{key}"
    sa, sb = (torch.load(r / "last.state.pt", weights_only=True)["optimizers"] for r in (whole, parts))
    for step in ("discriminator", "generator"):
        for x, y in zip(sa[step]["state"].values(), sb[step]["state"].values(), strict=True):
            assert int(x["step"]) == int(y["step"]) and torch.equal(x["exp_avg_sq"], y["exp_avg_sq"])


def test_generator_checkpoint_exports_to_onnx_with_its_trained_arguments(tmp_path):
    """`G(width=24)` differs from the network's default; the weight file's metadata carries the arguments."""
    import onnx

    spec = _gan(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--quiet", "--max-steps", "1"]) == 0
    out = tmp_path / "g.onnx"
    assert main(["export", "onnx", str(spec), "--model", "G", "--weights", str(run / "last.g.safetensors"),
                 "-o", str(out)]) == 0
    model = onnx.load(str(out))
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    assert (24, 8) in shapes.values()  # fc1 of width 24, as trained


# --- the measure ---------------------------------------------------------------------------------------------

def test_frechet_distance_of_a_set_with_itself_and_a_shifted_one():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    shift = np.array([0.5, -1.0, 0.0, 2.0, 0.0, 0.25])
    assert gan.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # a shift moves the mean only: the distance is |shift|^2
    assert gan.frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-4)
    assert gan.frechet_distance(a, a * 2.0) > gan.frechet_distance(a, a * 1.1) > 1e-3


class Replay(nn.Module):
    """A 'generator' that returns real test images: for a label c, images of class (c + offset) % 10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, offset: int = 0) -> None:
        super().__init__()
        self.images, self.labels, self.offset, self.seen = torch.from_numpy(images), torch.from_numpy(labels), offset, 0

    def forward(self, z, labels=None):
        if labels is None:
            rows = torch.arange(self.seen, self.seen + len(z)) % len(self.images)
            self.seen += len(z)
            return self.images[rows]
        rows = [int(torch.nonzero(self.labels == (c + self.offset) % 10)[i % 7]) for i, c in enumerate(labels.tolist())]
        return self.images[rows]


def _context(tmp_path, show, module, split, classifier, n, confidence=0.9):
    show = dataclasses.replace(show, options=(Option("classifier", str(classifier)), Option("n", n),
                                              Option("confidence", confidence), Option("every", 1)))
    return evals.Context(show, {"g": module}, split, "test", tmp_path, 1, True, torch.device("cpu"), 64,
                         torch.Generator().manual_seed(0), {"classes": [str(i) for i in range(10)]})


def test_gan_score_of_real_digits(tmp_path, classifier):
    spec = _gan(tmp_path, show=f'show gan_score(g, classifier="{classifier}", n=270)')
    show = compile_file(spec).trains["GAN"].shows[0]
    split = datasets.load("digits", {"size": 8, "scale": "tanh"}).splits["test"]
    figures = evals.run(_context(tmp_path, show, Replay(split["image"], split["label"]), split, classifier, 270, 0.6))
    # the same images, scored by hand with the same classifier
    net, _ = gan.load_classifier(classifier, torch.device("cpu"))
    with torch.no_grad():
        probs = torch.softmax(net((torch.from_numpy(split["image"]) + 1) / 2), 1)
    assert figures["confident"] == pytest.approx(float((probs.max(1).values >= 0.6).float().mean()), abs=1e-6)
    assert figures["confident"] > 0.6 and figures["classes"] == 10
    assert figures["real_confident"] == figures["confident"]  # the 'samples' are the split's own images
    assert figures["fid"] == pytest.approx(0.0, abs=1e-3)  # the split itself
    assert (tmp_path / "samples" / "gan_score_test.png").stat().st_size > 1000

    # a conditional 'generator' that gives the asked class, then one that gives the next class
    conditional = dataclasses.replace(show, feeds=("", "label"), levels=10)
    right = evals.run(_context(tmp_path, conditional, Replay(split["image"], split["label"]), split, classifier, 200))
    wrong = evals.run(_context(tmp_path, conditional, Replay(split["image"], split["label"], 1), split, classifier, 200))
    assert right["match"] > 0.8 and wrong["match"] < 0.2
    assert sorted(k for k in right if k.startswith("match_")) == [f"match_{c}" for c in range(10)]
    assert right["match"] == pytest.approx(np.mean([right[f"match_{c}"] for c in range(10)]))


def test_gan_score_in_a_run(tmp_path, classifier):
    spec = _gan(tmp_path, show=f'show samples = prior(g, n=16)\n  show gan_score(g, classifier="{classifier}", n=200)')
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    figures = summary["shows"]["gan_score"]
    assert {"confident", "classes", "fid"} <= set(figures) and "match" not in figures
    assert 0.0 <= figures["confident"] <= 1.0 and 0 <= figures["classes"] <= 10 and figures["fid"] > 0
    epoch = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][0]
    assert set(epoch["shows"]["gan_score"]) == set(figures)
    assert (run / "samples" / "samples_epoch001.png").exists()


def test_missing_classifier_is_a_clear_error(tmp_path, capsys):
    spec = _gan(tmp_path, show='show gan_score(g, classifier="nowhere/best.safetensors", n=20)')
    code = main(["train", str(spec), "-o", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "nowhere/best.safetensors" in err and "Traceback" not in err
