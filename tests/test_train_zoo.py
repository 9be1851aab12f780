"""The zoo's training definitions and the pictures of `show`, trained for real but briefly.

Every `train` definition of the zoo compiles to the plan it means (models, data, loss, metrics,
pictures) and runs two steps in this process (`--max-steps 2`, mid-epoch: checkpoints, no
pictures) whose checkpoint holds exactly the compiled network's weights; the transfer definition
starts from the digits classifier's weights and keeps its frozen part fixed. Small specs of this
file's own, one epoch each on 8x8 digits or a small text file, make every kind of picture. The
sampler's raster order and conditioning are checked against a stub model with a known rule.
Everything runs inside this process (`dlc.cli.main`) on one thread, like tests/test_train_loop.py.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from conftest import train_here
from dlc.compiler.checkpoint import load_weights
from dlc.compiler.ir.graph import Graph, Node
from dlc.compiler.ir.train import TrainPlan, options
from dlc.compiler.pipeline import compile_file, compile_network
from dlc.runtime.train import samples

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"


# -- the zoo's definitions, as they should compile ---------------------------------------------


@dataclass(frozen=True)
class Zoo:
    spec: str
    name: str
    models: tuple[tuple[str, str], ...]  # (model name, network)
    data: str
    data_options: dict
    inputs: tuple[str, ...]
    loss_op: str
    metrics: tuple[str, ...]  # the other outputs, in order
    shows: tuple[tuple[str, str], ...]  # (kind, file stem)


ZOO = (
    Zoo("digits_cnn.arch", "Digits", (("net", "DigitsCNN"),), "digits", {"size": 28, "target": "digit"},
        ("image", "label"), "cross_entropy", ("accuracy",), (("confusion", "confusion"),)),
    Zoo("digits_cnn.arch", "DigitsParity", (("net", "DigitsCNN"),), "digits", {"size": 28, "target": "parity"},
        ("image", "label"), "cross_entropy", ("accuracy",), (("confusion", "confusion"),)),
    Zoo("vae.arch", "VAEDigits", (("vae", "VAE"),), "digits", {"size": 28, "binarize": False},
        ("image",), "add", ("reconstruction", "kl"), (("prior", "samples"), ("reconstruct", "reconstruct"))),
    Zoo("mlp_autoencoder.arch", "AutoEncoderDigits", (("ae", "AutoEncoder"),), "digits", {"size": 28},
        ("image",), "bce", ("mse",), (("reconstruct", "reconstruct"),)),
    Zoo("conv_autoencoder.arch", "ConvAutoEncoderDigits", (("ae", "ConvAutoEncoder"),), "digits", {"size": 28},
        ("image",), "mse", ("bce",), (("reconstruct", "reconstruct"),)),
    Zoo("pixelcnn.arch", "PixelCNNDigits", (("net", "PixelCNN"),), "digits", {"size": 28, "binarize": True},
        ("image",), "cross_entropy", ("bits_per_dim",), (("autoregressive", "autoregressive"),)),
    Zoo("gpt2.arch", "CharGPT", (("gpt", "GPT2"),), "text", {"seq": 128, "path": None},
        ("tokens", "targets"), "cross_entropy", ("bits_per_char",), (("generate", "generate"),)),
)
BY_NAME = {z.name: z for z in ZOO}


def _plan(spec: str | Path, name: str) -> TrainPlan:
    result = compile_file(spec)
    assert result.ok, [d.message for d in result.diagnostics]
    return result.trains[name]


def _producer(graph: Graph, vid: int) -> Node:
    node = graph.value(vid).producer
    assert node is not None, f"value {vid} of {graph.name} is an input, not an op's output"
    return graph.nodes[node]


@pytest.mark.parametrize("zoo", ZOO, ids=lambda z: z.name)
def test_zoo_definition_compiles_to_its_plan(zoo):
    plan = _plan(SPEC / zoo.spec, zoo.name)
    assert [(m.name, m.network) for m in plan.models] == list(zoo.models)
    assert plan.data.kind == zoo.data
    given = options(plan.data.options)
    assert {k: given[k] for k in zoo.data_options} == zoo.data_options
    assert [i.name for i in plan.data.inputs] == list(zoo.inputs)
    (step,) = plan.steps
    names = [name for name, _ in step.graph.outputs]
    assert names == ["loss", *zoo.metrics]
    assert _producer(step.graph, dict(step.graph.outputs)["loss"]).op == zoo.loss_op
    assert step.models == tuple(m for m, _ in zoo.models)
    assert [(s.kind, s.name) for s in plan.shows] == list(zoo.shows)
    for m in plan.models:  # the weights the plan expects are the network's own, compiled alone
        graph = compile_network(SPEC / zoo.spec, m.network, params=dict(m.args))
        for (name, shape, _), weight in zip(m.weights, graph.weights, strict=True):
            assert (name, tuple(shape)) == (weight.name, tuple(weight.shape))


def test_vae_loss_is_the_negative_elbo():
    plan = _plan(SPEC / "vae.arch", "VAEDigits")
    (step,) = plan.steps
    graph, outputs = step.graph, dict(step.graph.outputs)
    add = _producer(graph, outputs["loss"])
    terms = [_producer(graph, vid) for vid in add.inputs]
    assert [t.op for t in terms] == ["bce", "kl_normal"]
    assert dict(terms[0].attrs).get("reduce") == "sum"  # summed over pixels: nats per image
    assert list(add.inputs) == [outputs["reconstruction"], outputs["kl"]]
    assert step.higher_is_better == ()
    (prior, _) = plan.shows
    assert (prior.model, prior.child, prior.shape, options(prior.options)["n"]) == ("vae", "decoder", (20,), 64)


def test_zoo_metrics_and_samplers():
    digits = _plan(SPEC / "digits_cnn.arch", "Digits")
    assert digits.steps[0].higher_is_better == ("accuracy",)
    assert (digits.config.best, digits.config.best_higher) == ("accuracy", True)
    assert [i.classes for i in digits.data.inputs] == [None, 10]
    parity = _plan(SPEC / "digits_cnn.arch", "DigitsParity")
    assert [i.classes for i in parity.data.inputs] == [None, 2]
    (net,) = parity.models
    assert (net.weights_from, net.freeze) == ("runs/digits/best.safetensors", ("features",))
    for spec, name, metric in (("pixelcnn.arch", "PixelCNNDigits", "bits_per_dim"),
                               ("gpt2.arch", "CharGPT", "bits_per_char")):
        (step,) = _plan(SPEC / spec, name).steps
        outputs = dict(step.graph.outputs)
        bits = _producer(step.graph, outputs[metric])
        assert bits.op == "bits" and list(bits.inputs) == [outputs["loss"]], name
    (pixel,) = _plan(SPEC / "pixelcnn.arch", "PixelCNNDigits").shows
    assert (pixel.shape, pixel.levels) == ((1, 28, 28), 2)
    (text,) = _plan(SPEC / "gpt2.arch", "CharGPT").shows
    assert (text.shape, text.levels, options(text.options)["prompt"]) == ((128,), 256, "The ")


# -- smoke runs: two steps of each definition ---------------------------------------------------


_run = train_here


def _train(spec: Path, out: Path, *flags: str) -> str:
    """`dlc train` in this process, which must exit 0; its stderr."""
    code, stderr = _run(spec, out, *flags)
    assert code == 0, f"dlc train {spec} {' '.join(flags)}: exit {code}\n{stderr}"
    return stderr


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (run folder, stderr) of `--max-steps 2` for every zoo definition. DigitsParity runs in
    a folder of its own as the current directory, where runs/digits/best.safetensors is the Digits
    run's weights."""
    root = tmp_path_factory.mktemp("smoke")
    runs = {}
    for zoo in ZOO:
        if zoo.name == "DigitsParity":
            continue
        out = root / zoo.name
        runs[zoo.name] = (out, _train(SPEC / zoo.spec, out, "--train", zoo.name, "--max-steps", "2"))
    here = root / "parity_cwd"
    (here / "runs" / "digits").mkdir(parents=True)
    shutil.copy(root / "Digits" / "last.safetensors", here / "runs" / "digits" / "best.safetensors")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(here)
        out = here / "parity"
        runs["DigitsParity"] = (out, _train(SPEC / "digits_cnn.arch", out, "--train", "DigitsParity",
                                            "--max-steps", "2"))
    return runs


@pytest.mark.parametrize("zoo", ZOO, ids=lambda z: z.name)
def test_smoke_run_writes_the_networks_weights(zoo, smoke):
    out, stderr = smoke[zoo.name]
    assert "Traceback" not in stderr and "stopped after epoch 0" in stderr, stderr
    assert (out / "last.state.pt").is_file() and (out / "last.safetensors").is_file()
    assert not (out / "samples").exists() and not (out / "summary.json").exists()  # stopped mid-epoch
    plan = _plan(SPEC / zoo.spec, zoo.name)
    (m,) = plan.models
    graph = compile_network(SPEC / zoo.spec, m.network, params=dict(m.args))
    saved = load_file(str(out / "last.safetensors"))
    expected = sorted((w.name, tuple(w.shape)) for w in graph.weights)
    assert sorted((k, tuple(v.shape)) for k, v in saved.items()) == expected
    loaded = load_weights(graph, out / "last.safetensors")  # the compiler's reader takes it unchanged
    assert sorted(loaded) == sorted(saved)
    for key in sorted(saved):
        assert np.array_equal(loaded[key], saved[key].numpy()), key
    with safe_open(str(out / "last.safetensors"), "pt") as f:
        meta = f.metadata()
    assert (meta["dlc_train"], meta["dlc_network"]) == (zoo.name, m.network)
    state = torch.load(out / "last.state.pt", map_location="cpu", weights_only=True)
    assert (state["plan"], state["epoch"], state["batch_index"], state["global_step"]) == (zoo.name, 1, 2, 2)
    assert sorted(state["models"][m.name]) == sorted(saved)
    for key in sorted(saved):
        assert torch.equal(state["models"][m.name][key], saved[key]), key


def test_transfer_keeps_features_and_starts_a_fresh_head(smoke):
    start = load_file(str(smoke["Digits"][0] / "last.safetensors"))
    out, _ = smoke["DigitsParity"]
    end = load_file(str(out / "last.safetensors"))
    features = sorted(k for k in end if k.startswith("features."))
    assert features == sorted(k for k in start if k.startswith("features."))
    assert any(k.endswith("running_mean") for k in features)  # batch norms in eval mode: stats kept too
    for key in features:
        assert torch.equal(end[key], start[key]), f"frozen {key} changed in the transfer's steps"
    assert (end["classifier.weight"].shape, end["classifier.bias"].shape) == ((2, 64), (2,))
    assert start["classifier.weight"].shape == (10, 64)
    assert not torch.equal(end["classifier.weight"], start["classifier.weight"][:2])
    state = torch.load(out / "last.state.pt", map_location="cpu", weights_only=True)
    (optimizer,) = state["optimizers"].values()
    assert len(optimizer["param_groups"][0]["params"]) == 2  # classifier.weight and .bias only


def test_transfer_lists_the_fresh_head_weights(smoke):
    _, stderr = smoke["DigitsParity"]
    notes = [line for line in stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2, (
        "a run stopped by --max-steps (or Ctrl-C) does not list the weights that kept their fresh "
        "initialization: dlc/cli.py cmd_train returns on `done.interrupted` before it prints "
        f"`done.notes`; stderr was:\n{stderr}")
    assert "classifier.bias [2] (checkpoint [10])" in notes[0], notes
    assert "classifier.weight [2, 64] (checkpoint [10, 64])" in notes[1], notes


SMALL_NETWORK = """\
block Hidden(width) {
  input x
  output y = x -> fc: linear(width) -> relu
}

network Small(k=10, n=1) {
  input x: f32[B, 1, 8, 8]
  output logits = x -> flatten -> h: Hidden(64) * n -> fc: linear(k)  # copies keep the width 64
}
"""

SMALL_TRAIN = """\
train Fit {{
  data digits(size=8)
  model net = {network}
  config batch=64
  optimizer adam(lr=1e-3)
  input image: f32[B, 1, 8, 8], label: i64[B]
  logits = image -> net
  output loss = (logits, label) -> cross_entropy
}}
"""


def _small_run(tmp_path: Path, network: str, head: str = SMALL_NETWORK) -> tuple[int, str, Path]:
    spec = tmp_path / "small.arch"
    spec.write_text(head + SMALL_TRAIN.format(network=network))
    code, stderr = _run(spec, tmp_path / "run", "--max-steps", "2")
    return code, stderr, tmp_path / "run"


def test_repeat_once_trains(tmp_path):
    code, stderr, run = _small_run(tmp_path, "Small(k=10, n=1)")
    assert code == 0, (
        "a network with `label: Block(...) * n` at n = 1 (e.g. GPT2(layers=1)) does not train: "
        "compiler/passes/expand.py names the single copy `h` (`label if repeat == 1`), while the "
        "PyTorch emitter builds nn.Sequential, whose weights are `h.0.*`, as docs/language.md "
        f"(\"Repetition\": `h.0` ... `h.11`) says; stderr:\n{stderr}")
    assert sorted(load_file(str(run / "last.safetensors"))) == [
        "fc.bias", "fc.weight", "h.0.fc.bias", "h.0.fc.weight"]


def test_model_from_an_aliased_import_trains(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "net.arch").write_text(SMALL_NETWORK)
    code, stderr, run = _small_run(tmp_path, "lib.Small(k=10, n=2)", head='import "lib/net.arch" as lib\n')
    assert code == 0, (
        "`model net = lib.Small(...)` (a network of an aliased import) ends in an internal compiler "
        "error: compiler/emit/torch/classes.py layer_stage looks up a pending layer value by "
        "callee_name(expr) (compiler/emit/torch/text.py), which is None for a qualified callee "
        "`lib.Small`, so block_stage gets ref=None (AttributeError); `let c = lib.Small(...)` "
        f"then `x -> c` in a plain network fails the same way in `dlc emit torch`; stderr:\n{stderr}")
    assert "h.1.fc.weight" in load_file(str(run / "last.safetensors"))


# -- pictures: one epoch of small definitions --------------------------------------------------

PICTURES = """\
network Enc(latent=4) {
  input x: f32[B, 1, 8, 8]
  h = x -> flatten -> fc1: linear(32) -> relu
  output mu = h -> fc_mu: linear(latent)
  output logvar = h -> fc_logvar: linear(latent)
}

network Dec(latent=4) {
  input z: f32[B, latent]
  output x_hat = z -> fc1: linear(32) -> relu -> fc2: linear(64) -> sigmoid -> reshape([-1, 1, 8, 8])
}

network TinyVAE(latent=4) {
  input x: f32[B, 1, 8, 8]
  mu, logvar = x -> encoder: Enc(latent)
  z = (mu, logvar) -> reparameterize
  output x_hat = z -> decoder: Dec(latent)
  output mu, logvar
}

network TinyPixelCNN(h=8, levels=2) {
  input x: f32[B, 1, 8, 8]
  f = x -> input_conv: masked_conv2d(h, 3, mask="A") -> relu -> mid: masked_conv2d(h, 3, mask="B") -> relu
  output logits = f -> out: conv2d(levels, 1)
}

import "gpt2.arch"  # GPT2, under its own name (a copy beside it: imports stay below its directory)

network Classifier(classes=10) {
  input x: f32[B, 1, 8, 8]
  output logits = x -> flatten -> fc1: linear(32) -> relu -> fc2: linear(classes)
}

train Vae {
  data digits(size=8)
  model vae = TinyVAE(latent=4)
  config batch=256, epochs=1
  optimizer adam(lr=3e-3)
  input image: f32[B, 1, 8, 8]
  x_hat, mu, logvar = image -> vae
  reconstruction = (x_hat, image) -> bce(reduce="sum")
  kl = (mu, logvar) -> kl_normal
  output loss = (reconstruction, kl) -> add
  output reconstruction, kl
  show prior(vae.decoder, n=16)
  show reconstruct(vae)
}

train Pixel {
  data digits(size=8, binarize=true)
  model net = TinyPixelCNN(h=8, levels=2)
  config batch=256, epochs=1
  optimizer adam(lr=3e-3)
  input image: f32[B, 1, 8, 8]
  logits = image -> net
  target = image -> to_levels(2) -> squeeze(1)
  output loss = (logits, target) -> cross_entropy
  output bits_per_dim = loss -> bits
  show autoregressive(net, n=4)
}

train Text {
  data text("{text}", seq=16)
  model gpt = GPT2(vocab=256, n_ctx=16, d=16, layers=2, heads=2)  # layers=1: see test_repeat_once_trains
  config batch=32, epochs=1
  optimizer adamw(lr=1e-2)
  input tokens: i64[B, 16], targets: i64[B, 16]
  logits = tokens -> gpt
  output loss = (logits, targets) -> cross_entropy(axis=-1)
  show generate(gpt, prompt="def ", length=40)
}

train Classify {
  data digits(size=8)
  model net = Classifier(classes=10)
  config batch=256, epochs=1, best="accuracy"
  optimizer adam(lr=1e-2)
  input image: f32[B, 1, 8, 8], label: i64[B]
  logits = image -> net
  output loss = (logits, label) -> cross_entropy
  output accuracy = (logits, label) -> accuracy
  show confusion(net)
}
"""

TEXT = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(600))  # ~18 kB: 33 batches of 32


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """name -> run folder: one epoch of each definition of PICTURES."""
    root = tmp_path_factory.mktemp("pictures")
    text = root / "code.txt"
    text.write_text(TEXT)
    spec = root / "pictures.arch"
    shutil.copy(SPEC / "gpt2.arch", root / "gpt2.arch")
    spec.write_text(PICTURES.replace("{text}", str(text)))
    runs = {}
    for name in ("Vae", "Pixel", "Text", "Classify"):
        runs[name] = root / name
        _train(spec, runs[name], "--train", name)
    return runs


def _png(path: Path, min_side: int = 64) -> tuple[int, int]:
    assert path.is_file(), f"{path} was not written; the folder has {sorted(p.name for p in path.parent.iterdir())}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("L"))
    assert min_side <= width <= 4000 and min_side <= height <= 4000, (path, image.size)
    assert pixels.min() < pixels.max(), f"{path} is one flat colour"
    return width, height


def _epochs(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"]


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_vae_pictures(pictures):
    run = pictures["Vae"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["prior_epoch001.png", "reconstruct_epoch001.png"]
    prior_w, prior_h = _png(run / "samples" / "prior_epoch001.png")  # 16 samples: a 4 x 4 grid
    recon_w, recon_h = _png(run / "samples" / "reconstruct_epoch001.png")  # 16 pairs: 2 rows of 16
    assert recon_w > 2 * recon_h and prior_w < 2 * prior_h, ((prior_w, prior_h), (recon_w, recon_h))
    (epoch,) = _epochs(run)
    assert epoch["epoch"] == 1
    for split in ("train", "val"):
        assert sorted(epoch[split]) == ["kl", "loss", "reconstruction"], epoch
        assert epoch[split]["loss"] == pytest.approx(epoch[split]["reconstruction"] + epoch[split]["kl"], rel=1e-4)
        assert epoch[split]["kl"] >= 0 and epoch[split]["reconstruction"] > 0, epoch
    summary = _summary(run)
    assert sorted(summary["test"]) == ["kl", "loss", "reconstruction"] and summary["epochs"] == 1


def test_pixelcnn_samples(pictures):
    run = pictures["Pixel"]
    _png(run / "samples" / "autoregressive_epoch001.png")
    (epoch,) = _epochs(run)
    for split in ("train", "val"):
        assert sorted(epoch[split]) == ["bits_per_dim", "loss"], epoch
        assert epoch[split]["bits_per_dim"] == pytest.approx(epoch[split]["loss"] / np.log(2), rel=1e-4)
    assert sorted(_summary(run)["test"]) == ["bits_per_dim", "loss"]


def test_generated_text_starts_with_the_prompt(pictures):
    run = pictures["Text"]
    (path,) = (run / "samples").iterdir()
    assert path.name == "generate_epoch001.txt"
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    assert text.startswith("def "), text
    # 40 sampled bytes after the prompt's 4; bytes that are no UTF-8 become U+FFFD (3 bytes here)
    assert 4 + 40 // 4 <= len(text) <= 4 + 40 and 4 + 40 <= len(raw) <= 4 + 3 * 40, (len(text), len(raw), text)
    (epoch,) = _epochs(run)
    for split in ("train", "val"):  # text data: the log adds perplexity = exp(loss)
        assert sorted(epoch[split]) == ["loss", "perplexity"], epoch
        assert epoch[split]["perplexity"] == pytest.approx(np.exp(epoch[split]["loss"]), rel=1e-6)
        assert epoch[split]["loss"] < 0.75 * np.log(256), epoch  # one epoch learns something of the bytes
    summary = _summary(run)
    assert sorted(summary["test"]) == ["loss", "perplexity"] and summary["unigram_bits"] > 0


def test_confusion_matrix_and_summary(pictures):
    run = pictures["Classify"]
    _png(run / "confusion.png", min_side=200)
    assert not (run / "samples").exists()  # the confusion matrix is drawn once, at the end
    (epoch,) = _epochs(run)
    for split in ("train", "val"):
        assert sorted(epoch[split]) == ["accuracy", "loss"], epoch
        assert 0 <= epoch[split]["accuracy"] <= 1
    summary = _summary(run)
    assert sorted(summary["test"]) == ["accuracy", "loss"] and summary["epochs"] == 1
    assert summary["test"]["accuracy"] > 0.3, summary  # 10 classes: chance is 0.1
    assert summary["best"] == {"accuracy": epoch["val"]["accuracy"]}
    assert (run / "best.safetensors").is_file() and (run / "curves.png").is_file()


# -- the samplers themselves, against models with a known rule ---------------------------------


class Alternating(nn.Module):
    """Logits that make pixel p (raster order) take level (level of pixel p - 1) + 1 mod `levels`,
    level 1 for the first pixel; it counts its calls and keeps what each call saw."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        n, _, h, w = x.shape
        flat = x[:, 0].reshape(n, h * w)
        previous = torch.cat([torch.zeros(n, 1), torch.round(flat[:, :-1] * (self.levels - 1))], dim=1)
        wanted = (previous.long() + 1) % self.levels  # (n, h*w)
        logits = torch.full((n, self.levels, h * w), -30.0)
        logits.scatter_(1, wanted.unsqueeze(1), 30.0)
        return logits.reshape(n, self.levels, h, w)


@pytest.mark.parametrize("levels", [2, 4])
def test_autoregressive_sampling_follows_raster_order(levels):
    h, w = 3, 5  # odd width: a row-by-row order and a column-by-column one give different images
    model = Alternating(levels)
    gen = torch.Generator().manual_seed(0)
    images = samples.autoregressive(model, 2, (1, h, w), levels, 1.0, gen, torch.device("cpu"))
    expected = (np.arange(1, h * w + 1) % levels).reshape(h, w) / (levels - 1)
    assert images.shape == (2, 1, h, w)
    for image in images:
        assert np.allclose(image[0], expected), (image[0], expected)
    assert len(model.seen) == h * w  # one forward pass per pixel
    for p, seen in enumerate(model.seen):  # each pass sees the pixels before p and zeros from p on
        flat = seen[:, 0].reshape(2, -1).numpy()
        assert np.allclose(flat[:, :p], expected.reshape(-1)[:p]) and not flat[:, p:].any(), p


def test_autoregressive_temperature_spreads_samples():
    model = Alternating(2)
    cold = samples.autoregressive(model, 64, (1, 2, 2), 2, 1.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    hot = samples.autoregressive(model, 64, (1, 2, 2), 2, 1e3, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert (cold == cold[:1]).all()  # logits of +-30: one image, every time
    assert len({image.tobytes() for image in hot}) > 4  # T = 1000: nearly uniform pixels


class NextByte(nn.Module):
    """A byte model whose next byte is the last one + 1 (mod 256); it keeps the context lengths."""

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (1, T) -> (1, T, 256)
        self.lengths.append(ids.shape[1])
        logits = torch.full((*ids.shape, 256), -30.0)
        logits.scatter_(2, ((ids + 1) % 256).unsqueeze(2), 30.0)
        return logits


def test_generate_continues_the_prompt_within_the_window():
    model = NextByte()
    text = samples.generate(model, "def ", 6, 3, 1.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert text == "def !\"#$%&"  # ' ' is 0x20; each byte follows from the one before it
    assert model.lengths == [3, 3, 3, 3, 3, 3]  # the context never exceeds the model's window
