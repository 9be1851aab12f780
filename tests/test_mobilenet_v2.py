"""MobileNetV2 (spec/mobilenet_v2.arch) against torchvision's mobilenet_v2, the reference.

Its keys and shapes are torchvision's for every width multiplier (the widths go through
torchvision's `_make_divisible` rule, written in the spec), so the shipped torchvision key map
only fills `num_batches_tracked`. A seeded torchvision model, saved as torchvision users save
one (`torch.save(model.state_dict())`), goes through `dlc export onnx --weights --torch-load
--weights-from torchvision`, and ONNX Runtime must then compute torchvision's logits in eval mode.
The emitted PyTorch module is checked the same way, with the other torchvision networks, by
tests/test_pretrained.py's TORCHVISION table; the TVM build by tests/test_tvm.py.

torchvision's wheel is built against another torch: its C ops fail to register, so it is
imported with `torch.library.register_fake` replaced by a no-op decorator (as test_pretrained.py does).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from dlc.compiler.checkpoint import CheckpointError, fit_checkpoint
from dlc.compiler.emit.torch import torch_namespace
from dlc.compiler.keymaps import find_keymap
from dlc.compiler.pipeline import compile_file

SPEC = "spec/mobilenet_v2.arch"


@pytest.fixture(scope="module")
def torchvision():
    real = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision
    finally:
        torch.library.register_fake = real
    return torchvision


@pytest.fixture(scope="module")
def reference(torchvision):
    """torchvision's mobilenet_v2 with seeded weights and batch-norm statistics as after training
    (fresh ones, 0 and 1, would hide a mean loaded as a variance), in eval mode."""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.fixture(scope="module")
def image():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def _numpy(state) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in state.items()}


@pytest.mark.parametrize("width_mult", [0.35, 0.5, 1.0, 1.4])  # 0.35: the 10% rule raises the stem to 16
def test_keys_and_shapes_are_torchvisions_at_every_width(torchvision, width_mult):
    """In torchvision's order, from the compiler and from the generated class (emitted once, for the
    defaults, and built with this width: tests/test_torch_generic.py varies only integers)."""
    with torch.device("meta"):
        want = torchvision.models.mobilenet_v2(width_mult=width_mult, num_classes=10).state_dict()
        emitted = torch_namespace(ROOT / SPEC).MobileNetV2(width_mult=width_mult, num_classes=10).state_dict()
    want = [(k, tuple(v.shape)) for k, v in want.items()]
    graph = compile_file(SPEC, params={"width_mult": width_mult, "num_classes": 10}).graphs["MobileNetV2"]
    assert [(w.name, w.shape) for w in graph.weights] == want
    assert [(k, tuple(v.shape)) for k, v in emitted.items()] == want


def test_the_torchvision_key_map_covers_every_key(reference):
    """Nothing to rename; a checkpoint older than `num_batches_tracked` gets all 52 filled with 0."""
    graph = compile_file(SPEC).graphs["MobileNetV2"]
    wanted = {w.name: w.shape for w in graph.weights}
    keymap = find_keymap("torchvision", "MobileNetV2")
    state = _numpy(reference.state_dict())
    mapped = keymap.apply(state, wanted)
    assert sorted(mapped.arrays) == sorted(wanted) == sorted(state)
    assert not mapped.problems and not mapped.origin  # every key kept its name, none was filled
    legacy = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    filled = keymap.apply(legacy, wanted)
    assert sorted(filled.arrays) == sorted(wanted) and not filled.problems
    assert sorted(filled.origin) == sorted(set(wanted) - set(legacy)) and len(filled.origin) == 52


def test_a_checkpoint_of_another_width_is_refused_with_its_keys(torchvision):
    """torchvision's mobilenet_v2(width_mult=0.5) into the default spec: E0405, naming what does not fit."""
    torch.manual_seed(0)
    half = _numpy(torchvision.models.mobilenet_v2(width_mult=0.5).state_dict())
    graph = compile_file(SPEC).graphs["MobileNetV2"]
    with pytest.raises(CheckpointError) as err:
        fit_checkpoint(graph, half, "mobilenet_v2_half", find_keymap("torchvision", "MobileNetV2"))
    assert err.value.diag.code == "E0405"
    assert "key `features.0.0.weight` has shape [16, 3, 3, 3], the spec needs [32, 3, 3, 3]" in err.value.diag.notes


def test_export_onnx_with_a_torchvision_state_dict_computes_torchvisions_logits(reference, image, tmp_path):
    """`torch.save(model.state_dict(), "mobilenet_v2.pth")`, read with the explicit --torch-load."""
    import onnxruntime as ort

    ckpt = tmp_path / "mobilenet_v2.pth"
    torch.save(reference.state_dict(), ckpt)
    out = tmp_path / "mobilenet_v2.onnx"
    proc = subprocess.run([sys.executable, "-m", "dlc", "export", "onnx", SPEC, "--weights", str(ckpt), "--torch-load",
                           "--weights-from", "torchvision", "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["logits"], {"x": image.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, reference(image).numpy(), atol=1e-4, rtol=1e-4)
