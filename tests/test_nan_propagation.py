"""NaN and +/-inf reach the outputs of a TVM artifact as they reach PyTorch's and ONNX Runtime's
(issue 20): one NaN pixel must not give finite logits.

TIR's float `max(a, b)` is `a > b ? a : b`, which drops a NaN in `a`; `build.ieee_min_max`
rewrites it and starts max reductions from -inf (docs/tvm-tuning-notes.md). Every comparison is
element by element over four kinds (finite, NaN, +inf, -inf), and the finite elements must agree
in value. ONNX Runtime's CPU MaxPool skips NaN and starts from the lowest finite float, so for
max pooling PyTorch alone is the reference (`test_onnx_runtime_max_pool_skips_nan` shows it).
Three small TVM builds, one per module-scoped fixture, the tuned wide blocks twice (without and
with `--winograd`), one CUDA build and one CLI build.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import SPEC, torch_weights
from dlc.compiler.backends.tvm.artifact import write_artifact
from dlc.compiler.backends.tvm.build import build
from dlc.compiler.backends.tvm.targets import resolve_target
from dlc.compiler.emit.onnx import emit_onnx
from dlc.compiler.emit.torch import torch_namespace
from dlc.compiler.pipeline import compile_file
from dlc.runtime import load

OPS = """network NonFiniteOps {
  input x: f32[B, 2, 6, 6]
  output relu_ = x -> relu
  output relu6_ = x -> relu6
  output hardtanh_ = x -> hardtanh
  output clamp_both = x -> clamp(0.0, 1.0)
  output clamp_low = x -> clamp(0.0, none)
  output leaky = x -> leaky_relu
  output hardswish_ = x -> hardswish
  output hardsigmoid_ = x -> hardsigmoid
  output elu_ = x -> elu
  output softplus_ = x -> softplus
  output softmax_ = x -> softmax(dim=-1)
  output log_softmax_ = x -> log_softmax(dim=-1)
  output pool = x -> maxpool2d(2)
  output pool_padded = x -> maxpool2d(3, stride=2, padding=1)
  output pool_ceil = x -> maxpool2d(4, stride=4, ceil_mode=true)
  output pool_global = x -> global_maxpool
  output pool_adaptive = x -> adaptive_maxpool2d(2)
}
"""
# ONNX Runtime agrees with PyTorch on these, element by element
ON_ALL_THREE = ["relu_", "relu6_", "hardtanh_", "clamp_both", "leaky", "hardswish_", "hardsigmoid_", "elu_",
                "softplus_", "softmax_", "log_softmax_"]
MAX_POOLS = ["pool", "pool_padded", "pool_ceil", "pool_global", "pool_adaptive"]
# ONNX Runtime's Clip without an upper bound clips +inf to the largest finite float
AS_PYTORCH = [*MAX_POOLS, "clamp_low"]

FEATURES = """import "digits_cnn.arch"

network DigitsFeatureMap {
  input x: f32[B, 1, 28, 28]
  output h = x -> DigitsFeatures([32, 64, 64])
}
"""


def hostile_input() -> np.ndarray:
    """(1, 2, 6, 6): NaN first (0, 0) and last (3, 1) in a 2x2 window, +inf and -inf alone, and in
    channel 1 a window of -inf only, a row of -inf and a +inf."""
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32)
    x[0, 0, 0, 0] = x[0, 0, 3, 1] = np.nan
    x[0, 0, 2, 3], x[0, 0, 5, 5] = np.inf, -np.inf
    x[0, 1, :2, :2] = x[0, 1, 4, :] = -np.inf
    x[0, 1, 5, 4] = np.inf
    return x


def kinds(a: np.ndarray) -> list[str]:
    return ["nan" if math.isnan(v) else "+inf" if v == math.inf else "-inf" if v == -math.inf else "finite"
            for v in a.ravel().tolist()]


def assert_same(expected: np.ndarray, got: np.ndarray, what: str) -> None:
    """Same shape, the same kind at every element, and the finite elements within 1e-4."""
    assert got.shape == expected.shape, what
    differ = [(i, e, g) for i, (e, g) in enumerate(zip(kinds(expected), kinds(got), strict=True)) if e != g]
    assert not differ, f"{what}: {len(differ)} elements differ (index, expected, got): {differ[:5]}"
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], atol=1e-4, rtol=1e-4, err_msg=what)


class Backends:
    """One network of `spec` on the three backends, with the generated PyTorch module's weights."""

    def __init__(self, spec: Path, name: str, out: Path) -> None:
        result = compile_file(spec, name)
        assert not result.diagnostics, result.diagnostics
        self.graph = result.graphs[name]
        torch.manual_seed(0)
        self.module = getattr(torch_namespace(spec), name)().eval()
        weights = torch_weights(self.module)
        weights = {w.name: weights[w.name] for w in self.graph.weights}
        self.session = ort.InferenceSession(emit_onnx(self.graph, weights).SerializeToString(),
                                            providers=["CPUExecutionProvider"])
        target = resolve_target("llvm")
        write_artifact(build(self.graph, weights, target, "0" * 64, str(spec)), target, out)
        self.artifact = load(out)
        self.names = [n for n, _ in self.graph.outputs]

    def run(self, x: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        with torch.no_grad():
            expected = self.module(torch.from_numpy(x))
        expected = expected if isinstance(expected, tuple) else (expected,)
        return {"pytorch": {n: e.numpy() for n, e in zip(self.names, expected, strict=True)},
                "onnxruntime": dict(zip(self.names, self.session.run(self.names, {"x": x}), strict=True)),
                "tvm": self.artifact(x=x)}


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops")
    (root / "ops.arch").write_text(OPS)
    return Backends(root / "ops.arch", "NonFiniteOps", root / "artifact").run(hostile_input())


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return Backends(SPEC / "digits_cnn.arch", "DigitsCNN", tmp_path_factory.mktemp("digits") / "artifact")


@pytest.fixture(scope="module")
def feature_map(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    # an import stays inside its file's folder: the block is imported from a copy of the spec
    shutil.copy(SPEC / "digits_cnn.arch", root / "digits_cnn.arch")
    (root / "features.arch").write_text(FEATURES)
    return Backends(root / "features.arch", "DigitsFeatureMap", root / "artifact")


def digits_input(value: float) -> np.ndarray:
    """Two images in [0, 1); the first has `value` at one pixel."""
    x = np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32)
    x[0, 0, 10, 10] = value
    return x


@pytest.mark.parametrize("name", ON_ALL_THREE)
def test_activations_keep_nan_and_inf_as_pytorch_and_onnx_runtime(ops, name):
    assert "nan" in kinds(ops["pytorch"][name])
    assert_same(ops["pytorch"][name], ops["onnxruntime"][name], f"onnxruntime {name}")
    assert_same(ops["pytorch"][name], ops["tvm"][name], f"tvm {name}")


@pytest.mark.parametrize("name", AS_PYTORCH)
def test_max_pools_and_clamp_keep_nan_and_inf_as_pytorch(ops, name):
    assert "nan" in kinds(ops["pytorch"][name])
    assert_same(ops["pytorch"][name], ops["tvm"][name], f"tvm {name}")


def test_pools_of_minus_inf_only_are_minus_inf(ops):
    # channel 1's top-left 2x2 window is all -inf: TOPI's pool started from -3.4e38
    assert ops["pytorch"]["pool"][0, 1, 0, 0] == -np.inf
    assert ops["tvm"]["pool"][0, 1, 0, 0] == -np.inf


def test_onnx_runtime_max_pool_skips_nan(ops):
    # why the max pools compare with PyTorch alone: where PyTorch (and TVM) give NaN, ONNX Runtime
    # 1.x gives the window's largest number
    for name in MAX_POOLS:
        ours, theirs = kinds(ops["pytorch"][name]), kinds(ops["onnxruntime"][name])
        skipped = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a == "nan" and b != "nan"]
        assert skipped, name


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
def test_digits_cnn_logits_are_nan_where_pytorch_and_onnx_runtime_are(digits, value):
    out = digits.run(digits_input(value))
    # global average pooling makes every logit of the first image depend on the pixel
    assert set(kinds(out["pytorch"]["logits"][0])) == {"nan"}
    assert set(kinds(out["pytorch"]["logits"][1])) == {"finite"}
    for backend in ("onnxruntime", "tvm"):
        assert_same(out["pytorch"]["logits"], out[backend]["logits"], f"{backend} logits, pixel {value}")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
def test_digits_feature_map_is_nan_exactly_where_pytorch_is(feature_map, value):
    out = feature_map.run(digits_input(value))
    expected = kinds(out["pytorch"]["h"][0])
    # the pixel reaches a patch of the (64, 14, 14) map, not all of it, and nothing of image 2
    assert 0 < expected.count("nan") < len(expected) and set(kinds(out["pytorch"]["h"][1])) == {"finite"}
    assert_same(out["pytorch"]["h"], out["tvm"]["h"], f"tvm feature map, pixel {value}")


def test_cuda_build_keeps_reductions_it_can_split_across_threads(tmp_path):
    # GPU schedules split a reduction across threads only for a combiner TVM recognizes, so there
    # `ieee_min_max` leaves reductions alone: softmax and the max pools still build (nvcc checks)
    spec = tmp_path / "ops.arch"
    spec.write_text(OPS)
    built = build(compile_file(spec).graphs["NonFiniteOps"], {}, resolve_target("cuda", arch="sm_90"), "0" * 64,
                  str(spec))
    assert built.manifest["cuda"] == {"kernels": "kernels.cu", "nvcc": "compiled to a sm_90 cubin"}
    assert "__global__" in built.cuda_source


WIDE_BLOCKS = """import "std/resnet.arch"

network WideBlocks {
  input x: f32[B, 64, 16, 16]
  output y = x -> BasicBlock(64, 128) -> BasicBlock(128, 128)
}
"""


@pytest.fixture(scope="module")
def wide_blocks(tmp_path_factory):
    """Two ResNet BasicBlocks 64 -> 128 at 16x16 (three 3x3 convs of 128 channels, which Winograd
    takes), the generated PyTorch module, and `--tune 0` artifacts (dims bound, no trials) built
    without and with `--winograd`."""
    from dlc.compiler.backends.tvm.build import Tuning

    root = tmp_path_factory.mktemp("wide")
    spec = root / "wide.arch"
    spec.write_text(WIDE_BLOCKS)
    graph = compile_file(spec).graphs["WideBlocks"]
    torch.manual_seed(0)
    module = torch_namespace(spec).WideBlocks().eval()
    weights = {w.name: torch_weights(module)[w.name] for w in graph.weights}
    target = resolve_target("llvm")
    artifacts = {}
    for winograd in (False, True):
        tuning = Tuning(0, root / f"db-{winograd}", winograd=winograd)
        built = build(graph, weights, target, "0" * 64, str(spec), tuning=tuning, dims={"B": 1})
        assert built.manifest["tuning"]["winograd"] is winograd
        write_artifact(built, target, root / f"winograd-{winograd}")
        artifacts[winograd] = load(root / f"winograd-{winograd}")
    return module, artifacts


def wide_input(value: float | None) -> np.ndarray:
    """(1, 64, 16, 16) normal noise; with `value` at one pixel of channel 3."""
    x = np.random.default_rng(2).standard_normal((1, 64, 16, 16)).astype(np.float32)
    if value is not None:
        x[0, 3, 5, 9] = value
    return x


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
def test_tuned_wide_convs_keep_nan_where_pytorch_does_unless_winograd_is_asked_for(wide_blocks, value):
    # Winograd's transforms multiply the pixel by zeros and mix terms that cancel only in exact
    # arithmetic, so whole output tiles become NaN: a tuned build takes it only with --winograd
    module, artifacts = wide_blocks
    with torch.no_grad():
        expected = module(torch.from_numpy(wide_input(value))).numpy()
    # the pixel reaches part of the (128, 16, 16) map: 10,368 of 32,768 outputs (+inf gives NaN too)
    assert 0 < np.isnan(expected).sum() < expected.size
    assert_same(expected, artifacts[False](x=wide_input(value))["y"], f"tvm without winograd, pixel {value}")

    winograd = artifacts[True](x=wide_input(value))["y"]
    assert np.isnan(winograd[np.isnan(expected)]).all()  # NaN wherever PyTorch has it, and more
    assert np.isnan(winograd).sum() > np.isnan(expected).sum()
    with torch.no_grad():
        finite = module(torch.from_numpy(wide_input(None))).numpy()
    np.testing.assert_allclose(artifacts[True](x=wide_input(None))["y"], finite, atol=1e-4, rtol=1e-4)


def test_dlc_compile_takes_winograd_only_with_tune(tmp_path):
    import json
    import subprocess
    import sys

    def dlc(*args):
        return subprocess.run([sys.executable, "-c", "import sys; from dlc.cli import main; sys.exit(main())",
                               *map(str, args)], capture_output=True, text=True, cwd=tmp_path, timeout=600)

    spec = tmp_path / "wide.arch"
    spec.write_text(WIDE_BLOCKS)
    refused = dlc("compile", spec, "--winograd", "-o", tmp_path / "untuned")
    assert refused.returncode == 2 and "give --tune N too" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "untuned").exists()
    tuned = dlc("compile", spec, "--tune", 0, "--winograd", "--tune-db", tmp_path / "db", "-o", tmp_path / "tuned")
    assert tuned.returncode == 0, tuned.stderr
    assert json.loads((tmp_path / "tuned" / "manifest.json").read_text())["tuning"]["winograd"] is True
