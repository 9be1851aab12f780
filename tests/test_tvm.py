"""The TVM backend: the zoo networks TVM's importer accepts are built untuned for this CPU (the
large ones in small configurations, five only by benchmarks/tvm_zoo.py), loaded through
`dlc.runtime` and must equal the generated PyTorch module within 1e-4 on the same weights and
inputs (the artifact keeps the batch dynamic; the test uses the spec's size 1 to stay fast). The
others fail with a diagnostic. CUDA artifacts build here (nvcc, no GPU needed); aarch64 ones are real Arm ELF files."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, SPEC, random_inputs, torch_weights
from dlc.compiler.emit.torch import torch_namespace
from dlc.compiler.errors import EmitError
from dlc.compiler.backends.tvm.artifact import write_artifact
from dlc.compiler.backends.tvm.build import build, import_graph, prepare
from dlc.compiler.backends.tvm.targets import resolve_target
from dlc.compiler.pipeline import compile_file
from dlc.runtime import ArtifactError, load

CASES = [(spec.name, name) for spec in sorted(SPEC.glob("*.arch")) for name in compile_file(spec).graphs]
NO_TVM = {"Seq2Seq": "LSTM"}  # ops Relax's ONNX importer lacks (listed in the README)
SHORT = {"T": 16, "S": 12}
# The large networks are built here in small configurations (the same blocks and ops, fewer and
# narrower layers, smaller images): an untuned TVM build of each full-size one takes up to a minute
# on 2 cores. `python benchmarks/tvm_zoo.py` builds and compares every one at its full size.
# AlexNet and VGG16 pool to 6x6 / 7x7 whatever the image, which only 224x224 fills; GoogLeNet,
# ResNet50 and DenseNet121 have 175-430 ops: those five are built only by the benchmark, and
# `test_the_built_networks_cover_every_op_of_the_zoo` checks that the others use every op they use.
BENCHMARK_ONLY = {"AlexNet", "VGG16", "GoogLeNet", "ResNet50", "DenseNet121"}
SMALL: dict[str, dict] = {
    "ResNet18": {"num_classes": 10, "image_size": 32},
    "UNet": {"base": 8, "image_size": 32},
    "VisionTransformer": {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 32,
                          "mlp_dim": 64, "num_classes": 10},
    "GPT2": {"vocab": 100, "n_ctx": 32, "d": 32, "layers": 2, "heads": 2},
    "Transformer": {"vocab": 100, "d": 32, "heads": 2, "d_ff": 64, "n_enc": 2, "n_dec": 2},
    "Bert": {"vocab": 100, "max_pos": 64, "d": 32, "layers": 2, "heads": 2, "d_ff": 64},
    "BertPretrainHeads": {"vocab": 100, "d": 32},
    "SiameseKoch": {"features": 64},
    "SkipGram": {"vocab": 1000, "dim": 32},
    "SkipGramNS": {"vocab": 1000, "dim": 32},
}


def _path(spec):
    return ROOT / "tests" / spec if spec == PARTS else SPEC / spec


def _build(spec, name, tmp_path, target="llvm", params=None, **kw):
    result = compile_file(_path(spec), name, params=params)
    assert not result.diagnostics, result.diagnostics
    graph = result.graphs[name]
    torch.manual_seed(0)
    module = getattr(torch_namespace(_path(spec)), name)(**(params or {})).eval()
    weights = torch_weights(module)
    built = build(graph, {w.name: weights[w.name] for w in graph.weights}, resolve_target(target, **kw), "0" * 64,
                  f"spec/{spec}")
    write_artifact(built, resolve_target(target, **kw), tmp_path / name)
    return graph, module


PARTS = "tvm_parts.arch"  # in tests/: small networks for the ops only those five use
BUILT = [(spec, name) for spec, name in CASES if name not in BENCHMARK_ONLY] + \
    [(PARTS, name) for name in compile_file(ROOT / "tests" / PARTS).graphs]


def test_the_built_networks_cover_every_op_of_the_zoo():
    def ops(spec, name, params=None):
        return {node.op for node in compile_file(_path(spec), name, params=params).graphs[name].nodes}

    built = set().union(*(ops(spec, name, SMALL.get(name)) for spec, name in BUILT if name not in NO_TVM))
    for spec, name in CASES:
        if name in BENCHMARK_ONLY:
            assert ops(spec, name) <= built, (name, sorted(ops(spec, name) - built))


@pytest.mark.parametrize(("spec", "name"), BUILT, ids=[f"{s}:{n}" for s, n in BUILT])
def test_tvm_matches_pytorch(spec, name, tmp_path):
    if name in NO_TVM:
        with pytest.raises(EmitError) as err:
            _build(spec, name, tmp_path)
        assert err.value.diag.code == "E0603" and NO_TVM[name] in err.value.diag.message
        return
    graph, module = _build(spec, name, tmp_path, params=SMALL.get(name))
    model = load(tmp_path / name)
    feeds = random_inputs(graph, {**dict(graph.dim_examples), **SHORT, "B": 1})
    got = model(**feeds)
    assert list(got) == [n for n, _ in graph.outputs]
    with torch.no_grad():
        expected = module(*(torch.from_numpy(feeds[n]) for n, _ in graph.inputs))
    expected = expected if isinstance(expected, tuple) else (expected,)
    for (out, _), e in zip(graph.outputs, expected, strict=True):
        np.testing.assert_allclose(got[out], e.numpy(), atol=1e-4, rtol=1e-4, err_msg=f"{name}.{out}")


WIDE_BLOCK = """import "std/resnet.arch"

network WideBlock {
  input x: f32[B, 64, 16, 16]
  output y = x -> BasicBlock(64, 128) -> BasicBlock(128, 128)
}
"""


@pytest.mark.parametrize("tile", [4, 2])
def test_wide_3x3_convs_run_as_winograd_on_cpu(tmp_path, monkeypatch, tile):
    # ResNet blocks at 16x16: asked for (`--tune N --winograd`) and with a static batch, the three
    # 3x3 convs with 128 channels in and out are legalized as Winograd, the 64 -> 128 one stays
    # direct, the weight transforms run once at load, and the artifact still equals PyTorch within
    # 1e-4 (finite inputs); with a weight budget F(4x4, 3x3) exceeds (2.25 MiB here), as F(2x2, 3x3).
    # Not asked for, every conv stays direct (Winograd changes NaN/Inf semantics: test_nan_propagation.py)
    import tvm

    from dlc.compiler.backends.tvm import winograd as tvm_winograd
    from dlc.compiler.backends.tvm.build import Tuning

    if tile == 2:
        monkeypatch.setattr(tvm_winograd, "MAX_WEIGHT_BYTES", 1 << 20)

    spec = tmp_path / "wide.arch"
    spec.write_text(WIDE_BLOCK)
    graph = compile_file(spec).graphs["WideBlock"]
    torch.manual_seed(0)
    module = torch_namespace(spec).WideBlock().eval()
    weights = {w.name: torch_weights(module)[w.name] for w in graph.weights}
    llvm = tvm.target.Target(resolve_target("llvm").target)
    prepared = prepare(import_graph(graph, weights, {"B": 1})[0], llvm, winograd=True)
    main, at_load = prepared["main"].script(), prepared["main_transform_params"].script()
    assert (main.count("call_tir(fused_winograd"), main.count("call_tir(fused_conv2d")) == (3, 2)
    assert at_load.count("call_tir(winograd_weight") == 3 and "winograd_weight" not in main
    alpha = tile + 2
    assert at_load.count(f"R.Tensor(({alpha}, {alpha}, 128, 128)") >= 3
    # off by default, even with the batch bound; and with the batch left dynamic (the default
    # untuned build) the convs stay direct even when Winograd is asked for
    default = prepare(import_graph(graph, weights, {"B": 1})[0], llvm)
    assert "winograd" not in default["main"].script() and default["main"].script().count("call_tir(fused_conv2d") == 5
    assert "winograd" not in prepare(import_graph(graph, weights)[0], llvm, winograd=True)["main"].script()

    tuning = Tuning(0, tmp_path / "db", winograd=True)  # `--tune 0 --winograd`: no trials, default schedules
    built = build(graph, weights, resolve_target("llvm"), "0" * 64, "wide.arch", tuning=tuning, dims={"B": 1})
    assert built.manifest["tuning"]["winograd"] is True and built.manifest["tuning"]["trials"] == 0
    write_artifact(built, resolve_target("llvm"), tmp_path / "wide")
    x = random_inputs(graph, {"B": 1})["x"]
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(load(tmp_path / "wide")(x=x)["y"], expected, atol=1e-4, rtol=1e-4)


def test_which_convs_take_winograd():
    # measured on ResNet-18's layers (compiler/backends/tvm/winograd.py): wide enough, enough tiles,
    # and transformed weights small enough to be read by every call: F(4x4) up to 4 MiB, then F(2x2)
    from types import SimpleNamespace

    from dlc.compiler.backends.tvm.winograd import tile_for

    def conv(**kw):
        attrs = dict(strides=[1, 1], dilation=[1, 1], padding=[1, 1, 1, 1], groups=1, out_dtype=None,
                     data_layout="NCHW", kernel_layout="OIHW", out_layout="NCHW")
        return SimpleNamespace(**{**attrs, **kw})

    assert tile_for(conv(), [1, 128, 28, 28], [128, 128, 3, 3], "float32") == 4  # 2.25 MiB
    assert tile_for(conv(), [1, 256, 14, 14], [256, 256, 3, 3], "float32") == 2  # 9 MiB as F(4x4), 4 MiB
    assert tile_for(conv(), [1, 64, 56, 56], [64, 64, 3, 3], "float32") is None  # too narrow
    assert tile_for(conv(), [1, 128, 56, 56], [128, 64, 3, 3], "float32") is None  # narrow in
    assert tile_for(conv(), [1, 512, 7, 7], [512, 512, 3, 3], "float32") is None  # 16 MiB even as F(2x2)
    assert tile_for(conv(), [1, 128, 14, 14], [128, 128, 3, 3], "float32") == 2  # 4 leaves partial tiles
    assert tile_for(conv(), [1, 128, 13, 13], [128, 128, 3, 3], "float32") is None  # neither divides 13
    assert tile_for(conv(), [1, 160, 4, 4], [160, 160, 3, 3], "float32") is None  # 1 tile of 4, 4 of 2
    assert tile_for(conv(), [4, 160, 4, 4], [160, 160, 3, 3], "float32") == 2  # 16 tiles of 2 in the batch
    assert tile_for(conv(), [16, 160, 4, 4], [160, 160, 3, 3], "float32") == 4  # 16 tiles of 4
    assert tile_for(conv(), ["B", 256, 14, 14], [256, 256, 3, 3], "float32") is None  # dynamic batch
    assert tile_for(conv(strides=[2, 2]), [1, 256, 28, 28], [256, 256, 3, 3], "float32") is None
    assert tile_for(conv(dilation=[2, 2]), [1, 256, 14, 14], [256, 256, 3, 3], "float32") is None
    assert tile_for(conv(groups=2), [1, 256, 14, 14], [256, 128, 3, 3], "float32") is None
    assert tile_for(conv(), [1, 256, 14, 14], [256, 256, 5, 5], "float32") is None
    assert tile_for(conv(), [1, 256, 14, 14], [256, 256, 3, 3], "float16") is None
    assert tile_for(conv(data_layout="NHWC", out_layout="NHWC"), [1, 14, 14, 256], [256, 256, 3, 3], "float32") is None


def test_artifact_manifest_and_input_validation(tmp_path):
    graph, _ = _build("lenet5.arch", "LeNet5", tmp_path)
    manifest = json.loads((tmp_path / "LeNet5" / "manifest.json").read_text())
    assert manifest["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["B", 1, 32, 32]}]
    assert manifest["target"]["tvm"]["kind"] == "llvm" and manifest["tvm_version"].startswith("0.27")
    # the checkpoint's names (the large weights first: they reach TVM as inputs, import_graph)
    weights = [n for n in manifest["params"] if n.startswith(("conv", "fc"))]
    assert sorted(weights) == sorted(f"{layer}.{kind}" for layer in ("conv1", "conv2", "fc1", "fc2", "fc3")
                                     for kind in ("weight", "bias"))
    assert len(set(manifest["params"])) == len(manifest["params"])
    model = load(tmp_path / "LeNet5")
    with pytest.raises(ArtifactError, match=r"must have shape \[B, 1, 32, 32\], got \[2, 1, 28, 28\]"):
        model(x=np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ArtifactError, match="must be float32, got float64"):
        model(x=np.zeros((2, 1, 32, 32)))
    with pytest.raises(ArtifactError, match="missing: x; unexpected: y"):
        model(y=np.zeros((2, 1, 32, 32), np.float32))
    assert model(np.zeros((5, 1, 32, 32), np.float32))["logits"].shape == (5, 10)


def test_runtime_imports_neither_torch_nor_the_compiler(tmp_path):
    _build("digits_cnn.arch", "DigitsCNN", tmp_path)
    # torch blocked, as on a device without it (TVM itself imports torch when it is installed)
    code = ("import sys, numpy as np; sys.modules['torch'] = None; from dlc.runtime import load; "
            "m = load(sys.argv[1]); m(x=np.zeros((1, 1, 8, 8), np.float32)); "
            "bad = [k for k in sys.modules if k.startswith(('torch.', 'dlc.compiler'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "DigitsCNN")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runtime_uses_the_cores_the_artifact_was_built_for(tmp_path):
    _build("digits_cnn.arch", "DigitsCNN", tmp_path)
    cores = json.loads((tmp_path / "DigitsCNN" / "manifest.json").read_text())["target"]["tvm"]["num-cores"]
    code = ("import sys, numpy as np, tvm_ffi; from dlc.runtime import load; m = load(sys.argv[1]); "
            "m(x=np.zeros((1, 1, 8, 8), np.float32)); print(tvm_ffi.get_global_func('runtime.NumThreads')())")
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    for extra, want in (({}, min(cores, len(os.sched_getaffinity(0)))), ({"TVM_NUM_THREADS": "1"}, 1)):
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "DigitsCNN")], capture_output=True,
                              text=True, env={**env, **extra})
        assert proc.returncode == 0, proc.stderr
        assert int(proc.stdout.split()[-1]) == want, (extra, proc.stdout)


def test_compile_and_run_from_the_command_line(tmp_path):
    art = tmp_path / "digits"
    proc = subprocess.run([sys.executable, "-m", "dlc", "compile", "spec/digits_cnn.arch", "--target", "llvm",
                           "-o", str(art)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-m", "dlc", "run", str(art), "--input", str(tmp_path / "x.npy"),
                           "--output", str(tmp_path / "y.npy")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "logits: float32[3, 10]" in proc.stdout and np.load(tmp_path / "y.npy").shape == (3, 10)
    proc = subprocess.run([sys.executable, "-m", "dlc", "compile", "spec/seq2seq.arch", "-o", str(tmp_path / "s")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "error[E0603]" in proc.stderr and not (tmp_path / "s").exists()


def test_cuda_artifact_builds_without_a_gpu(tmp_path):
    _build("lenet5.arch", "LeNet5", tmp_path, target="cuda", arch="sm_90")
    manifest = json.loads((tmp_path / "LeNet5" / "manifest.json").read_text())
    assert manifest["target"]["device"] == "cuda" and manifest["target"]["tvm"]["arch"] == "sm_90"
    assert (tmp_path / "LeNet5" / "model.so").stat().st_size > 10_000
    # the kernels are real CUDA: nvcc compiled them to an sm_90 cubin during the build
    assert manifest["cuda"] == {"kernels": "kernels.cu", "nvcc": "compiled to a sm_90 cubin"}
    assert "__global__" in (tmp_path / "LeNet5" / "kernels.cu").read_text()


def test_aarch64_artifact_is_an_arm_elf(tmp_path):
    _build("lenet5.arch", "LeNet5", tmp_path, target="aarch64")
    header = (tmp_path / "LeNet5" / "model.so").read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
