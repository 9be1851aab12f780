"""Every zoo network trains: the classic image networks' training definitions on scikit-learn's digits.

LeNet-5, AlexNet, VGG-16, GoogLeNet, ResNet-18/50, DenseNet-121, a small ViT and the U-Net each
have a `train` definition in their spec. Each compiles to the plan it means (its network, the data
it reads, its optimizer) and runs: one optimizer step through the real loop (`train`, as `dlc train
--max-steps 1` runs it, with `config batch=2` instead of the spec's batch to stay cheap); AlexNet and
VGG-16 (57 and 134 million weights, checkpoints of 0.23 and 0.54 GB with twice that in optimizer
state) run their step module forward and backward by hand. The digits options they need are
checked against the images themselves: `channels=3` repeats the grey image, `target="mask"` marks
the pixels over 0.5. `iou` is checked against a direct count. Last, every network of every
spec/*.arch is trained by some definition of the zoo, as a model or inside one.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dlc.compiler.ir.train import TrainPlan, options
from dlc.compiler.pipeline import Compilation, compile_file
from dlc.runtime.layers import mean_iou
from dlc.runtime.train import data as datasets
from dlc.runtime.train.loop import Options, train
from dlc.runtime.train.modules import as_dict, build_steps

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"

# (spec, train definition, network, the data options it reads, optimizer)
ZOO = (
    ("lenet5.arch", "LeNet5Digits", "LeNet5", {"size": 32, "channels": 1, "target": "digit"}, "sgd"),
    ("alexnet.arch", "AlexNetDigits", "AlexNet", {"size": 64, "channels": 3, "target": "digit"}, "sgd"),
    ("vgg16.arch", "VGG16Digits", "VGG16", {"size": 32, "channels": 3, "target": "digit"}, "sgd"),
    ("googlenet.arch", "GoogLeNetDigits", "GoogLeNet", {"size": 32, "channels": 3, "target": "digit"}, "sgd"),
    ("resnet18.arch", "ResNet18Digits", "ResNet18", {"size": 32, "channels": 3, "target": "digit"}, "sgd"),
    ("resnet50.arch", "ResNet50Digits", "ResNet50", {"size": 32, "channels": 3, "target": "digit"}, "sgd"),
    ("densenet121.arch", "DenseNet121Digits", "DenseNet121", {"size": 32, "channels": 3, "target": "digit"}, "sgd"),
    ("vit_b_16.arch", "ViTDigits", "VisionTransformer", {"size": 32, "channels": 3, "target": "digit"}, "adamw"),
    ("unet.arch", "UNetDigits", "UNet", {"size": 32, "channels": 1, "target": "mask"}, "sgd"),
    ("mobilenet_v2.arch", "MobileNetV2Digits", "MobileNetV2", {"size": 32, "channels": 3, "target": "digit"}, "sgd"),
)
BY_LOOP = ("LeNet5Digits", "GoogLeNetDigits", "ResNet18Digits", "ResNet50Digits", "DenseNet121Digits", "ViTDigits",
           "UNetDigits", "MobileNetV2Digits")
BY_HAND = ("AlexNetDigits", "VGG16Digits")
_COMPILED: dict[str, Compilation] = {}


def _compiled(spec: str) -> Compilation:
    if spec not in _COMPILED:
        result = compile_file(SPEC / spec)
        assert result.ok, [d.message for d in result.diagnostics]
        _COMPILED[spec] = result
    return _COMPILED[spec]


def _entry(name: str):
    return next(z for z in ZOO if z[1] == name)


def _small(plan: TrainPlan) -> TrainPlan:
    return dataclasses.replace(plan, config=dataclasses.replace(plan.config, batch=2))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("spec, name, network, data, optimizer", ZOO, ids=[z[1] for z in ZOO])
def test_definition_compiles_to_its_plan(spec, name, network, data, optimizer):
    plan = _compiled(spec).trains[name]
    assert [(m.name, m.network) for m in plan.models] == [("net", network)]
    assert plan.data.kind == "digits"
    assert {k: v for k, v in options(plan.data.options).items() if k in data} == data
    (step,) = plan.steps
    assert step.optimizer.kind == optimizer
    size, channels = data["size"], data["channels"]
    inputs = {i.name: (i.dtype, i.dims[1:]) for i in plan.data.inputs}
    target = {"mask": ("mask", ("i64", (size, size)))}.get(data["target"], ("label", ("i64", ())))
    assert inputs == {"image": ("f32", (channels, size, size)), target[0]: target[1]}
    args = dict(plan.models[0].args)
    if network != "LeNet5":  # LeNet-5 takes 32x32 as it is; the others are told the size
        assert args["image_size"] == size
    classes = 2 if data["target"] == "mask" else 10
    assert args.get("num_classes", args.get("n_classes")) == classes
    assert next(i.classes for i in plan.data.inputs if i.name == target[0]) == classes


@pytest.mark.parametrize("name", BY_LOOP)
def test_one_step_of_the_loop(tmp_path, name):
    spec = _entry(name)[0]
    result = _compiled(spec)
    plan = result.trains[name]
    done = train(result, _small(plan), Options(tmp_path, quiet=True, max_steps=1))
    assert done.interrupted and done.epochs == 0  # stopped mid-epoch, after one batch
    weights = load_file(str(tmp_path / "last.safetensors"))
    expected = {w for w, _, _ in plan.models[0].weights}
    assert set(weights) == expected
    shapes = {w: tuple(s) for w, s, _ in plan.models[0].weights}
    assert all(tuple(t.shape) == shapes[k] for k, t in weights.items())
    assert all(torch.isfinite(t).all() for t in weights.values())
    state = torch.load(tmp_path / "last.state.pt", weights_only=False)
    assert state["global_step"] == 1 and state["plan"] == name
    assert (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("name", BY_HAND)
def test_one_step_by_hand(name):
    """The step module the loop would run, on a batch of two real digits: a finite loss, and a
    gradient for every weight the optimizer updates (the loop's optimizer is the others' sgd)."""
    spec, _, _, data, _ = _entry(name)
    result = _compiled(spec)
    plan = result.trains[name]
    torch.manual_seed(0)
    steps, models = build_steps(result, plan)
    (step,) = plan.steps
    dataset = datasets.load("digits", options(plan.data.options))
    batch = {f: torch.from_numpy(dataset.splits["train"][f][:2]) for f in ("image", "label")}
    assert batch["image"].shape == (2, 3, data["size"], data["size"])
    module = steps[step.name]
    module.train()
    outs = as_dict([n for n, _ in step.graph.outputs], module(**batch))
    loss = float(outs["loss"].detach())
    assert math.isfinite(loss) and loss > 0
    assert 0.0 <= float(outs["accuracy"]) <= 1.0
    outs["loss"].backward()
    params = dict(models["net"].named_parameters())
    assert set(params) == {w for w, _, trainable in plan.models[0].weights if trainable}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params.values())
    assert float(params["classifier.6.weight"].grad.abs().sum()) > 0


def test_digits_with_three_channels_repeat_the_grey_image():
    grey = datasets.load("digits", {"size": 16})
    rgb = datasets.load("digits", {"size": 16, "channels": 3})
    assert rgb.field("image").shape == (3, 16, 16)
    for split in datasets.SPLITS:
        g, c = grey.splits[split]["image"], rgb.splits[split]["image"]
        assert g.shape[1] == 1 and c.shape == (len(g), 3, 16, 16)
        for ch in range(3):
            np.testing.assert_array_equal(c[:, ch], g[:, 0])
        np.testing.assert_array_equal(rgb.splits[split]["label"], grey.splits[split]["label"])


def test_digits_mask_marks_the_pixels_over_one_half():
    grey = datasets.load("digits", {"size": 32})
    seg = datasets.load("digits", {"size": 32, "target": "mask"})
    assert [(f.name, f.dtype, f.shape, f.classes) for f in seg.fields] == [
        ("image", "f32", (1, 32, 32), None), ("mask", "i64", (32, 32), 2)]
    for split in datasets.SPLITS:
        image, mask = seg.splits[split]["image"], seg.splits[split]["mask"]
        np.testing.assert_array_equal(image, grey.splits[split]["image"])  # the same examples, in order
        assert mask.dtype == np.int64 and mask.shape == (len(image), 32, 32)
        np.testing.assert_array_equal(mask, (image[:, 0] > 0.5).astype(np.int64))
        share = mask.mean()
        assert 0.05 < share < 0.6  # both classes occur: strokes on a background
    tanh = datasets.load("digits", {"size": 32, "target": "mask", "scale": "tanh"})
    np.testing.assert_array_equal(tanh.splits["val"]["mask"], seg.splits["val"]["mask"])  # from [0, 1], not [-1, 1]


def test_digits_channels_and_mask_are_checked(tmp_path):
    with pytest.raises(datasets.DataError, match="channels"):
        datasets.load("digits", {"channels": 2})
    bad = tmp_path / "bad.arch"
    bad.write_text((SPEC / "unet.arch").read_text().replace('target="mask")', 'target="mask", channels=2)'))
    result = compile_file(bad)
    assert not result.ok
    (d,) = [d for d in result.diagnostics if d.severity == "error"]
    assert d.code == "E0702" and "`channels` of data `digits`" in d.message and "needs 1 (grey) or 3" in d.message
    assert (d.primary.span.line, bad.read_text().splitlines()[d.primary.span.line - 1].count("channels=2")) == \
        (next(i for i, line in enumerate(bad.read_text().splitlines(), 1) if "channels=2" in line), 1)


def _reference_iou(pred: np.ndarray, target: np.ndarray, classes: int) -> float:
    scores = []
    for c in range(classes):
        union = np.logical_or(pred == c, target == c).sum()
        if union:
            scores.append(np.logical_and(pred == c, target == c).sum() / union)
    return float(np.mean(scores))


def test_iou_counts_intersections_over_unions():
    rng = np.random.default_rng(3)
    logits = torch.from_numpy(rng.standard_normal((3, 4, 5, 6)).astype(np.float32))
    target = torch.from_numpy(rng.integers(0, 3, (3, 5, 6)))  # class 3 never a target, but predicted
    got = float(mean_iou(logits, target, 1))
    want = _reference_iou(logits.argmax(1).numpy(), target.numpy(), 4)
    assert got == pytest.approx(want, abs=1e-6)
    perfect = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float()
    assert float(mean_iou(perfect, target, 1)) == pytest.approx(1.0)  # absent class 3 is left out
    last = logits.permute(0, 2, 3, 1)  # classes on the last axis
    assert float(mean_iou(last, target, -1)) == pytest.approx(want, abs=1e-6)


def test_unet_plan_maximizes_iou_per_pixel():
    plan = _compiled("unet.arch").trains["UNetDigits"]
    assert plan.config.best == "iou" and plan.config.best_higher
    (step,) = plan.steps
    ops = {n: step.graph.nodes[step.graph.value(v).producer].op for n, v in step.graph.outputs}
    assert ops == {"loss": "cross_entropy", "accuracy": "accuracy", "iou": "iou"}


def test_every_zoo_network_has_a_training_definition():
    """Each `network` of spec/*.arch is trained by some `train` of the zoo: as its model, or inside one."""
    networks: dict[str, str] = {}
    trained: set[str] = set()
    for path in sorted(SPEC.glob("*.arch")):
        result = compile_file(path)
        assert result.ok, (path.name, [d.message for d in result.diagnostics][:3])
        for name in result.graphs:
            networks.setdefault(name, path.name)
        for plan in result.trains.values():
            models = {m.name for m in plan.models}
            trained |= {m.network for m in plan.models}
            for st in plan.steps:
                trained |= {c.frame.block for c in st.graph.calls if c.frame.path.split(".")[0] in models}
    missing = sorted(f"{spec}: {name}" for name, spec in networks.items() if name not in trained)
    assert not missing, f"networks without a training definition: {json.dumps(missing)}"
