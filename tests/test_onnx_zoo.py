"""The ONNX export of every zoo network, cross-checked against the generated PyTorch module:
same weights, ONNX Runtime equals PyTorch within 1e-5 at the spec's batch size and another one,
the full ONNX checker passes, and ONNX's own shape inference agrees with the IR."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
import pytest
import torch

from conftest import ROOT, SPEC, onnx_vs_torch, random_inputs
from dlc.compiler.emit.onnx import emit_onnx
from dlc.compiler.checkpoint import random_weights
from dlc.compiler.pipeline import compile_file

CASES = [(spec.name, name) for spec in sorted(SPEC.glob("*.arch")) for name in compile_file(spec).graphs]
SHORT = {"T": 16, "S": 12}  # sequence lengths for the checks (the specs' examples go up to 1024)


@pytest.mark.parametrize(("spec", "name"), CASES, ids=[f"{s}:{n}" for s, n in CASES])
def test_onnx_runtime_matches_pytorch(spec, name):
    model = onnx_vs_torch(SPEC / spec, name, batches=(1, 3), dims=SHORT, int_high=2)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == [n for n, _ in compile_file(SPEC / spec).graphs[name].inputs]


@pytest.mark.parametrize(("spec", "name"), CASES, ids=[f"{s}:{n}" for s, n in CASES])
def test_onnx_shape_inference_agrees_with_the_ir(spec, name):
    graph = compile_file(SPEC / spec).graphs[name]
    names: dict[int, str] = {}
    zeros = {w.name: np.zeros(w.shape, np.int64 if w.name.endswith("num_batches_tracked") else np.float32)
             for w in graph.weights}
    model = emit_onnx(graph, zeros, names)
    weights = {w.name for w in graph.weights}
    heavy = [t for t in model.graph.initializer if t.name in weights or ".onnx_" in t.name]
    kept = [t for t in model.graph.initializer if t.name not in weights and ".onnx_" not in t.name]
    model.graph.ClearField("initializer")  # shapes only: weights become typed inputs, constants stay
    model.graph.initializer.extend(kept)
    model.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in heavy)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {v.name: v.type.tensor_type.shape for v in [*inferred.graph.value_info, *inferred.graph.output]}
    compared = 0
    for vid, onnx_name in names.items():
        ir = graph.values[vid].type
        if onnx_name not in shapes or ir is None:
            continue
        dims = shapes[onnx_name].dim
        assert len(dims) == ir.rank, (onnx_name, ir)
        for got, want in zip(dims, ir.shape, strict=True):
            if want.is_const:
                assert got.HasField("dim_value") and got.dim_value == want.value, (onnx_name, str(ir))
            else:
                assert not got.HasField("dim_value"), (onnx_name, str(ir))
        compared += 1
    assert compared >= len(graph.outputs)


def _dlc(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "dlc", *args], capture_output=True, text=True, cwd=cwd)


def test_export_cli_with_a_checkpoint(tmp_path):
    """A safetensors checkpoint of the PyTorch module's state_dict gives the same outputs."""
    from safetensors.torch import save_file

    import dlc

    torch.manual_seed(1)
    net = dlc.torch_module("spec/lenet5.arch").eval()
    save_file(dict(net.state_dict()), str(tmp_path / "lenet.safetensors"))
    out = tmp_path / "lenet.onnx"
    proc = _dlc("export", "onnx", "spec/lenet5.arch", "--weights", str(tmp_path / "lenet.safetensors"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    x = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    got = ort.InferenceSession(str(out)).run(["logits"], {"x": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, net(torch.from_numpy(x)).numpy(), atol=1e-5, rtol=1e-5)
    model = onnx.load(str(out))
    assert {"conv1.weight", "fc3.bias"} <= {t.name for t in model.graph.initializer}


def test_multi_network_specs_export_each_network(tmp_path):
    proc = _dlc("export", "onnx", "spec/dcgan.arch", "-o", str(tmp_path / "gan"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "gan").iterdir()) == ["DigitsGenerator.onnx", "Discriminator.onnx",
                                                                    "Generator.onnx"]
    gen = onnx.load(str(tmp_path / "gan" / "Generator.onnx"))
    assert gen.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "B"


def test_a_checkpoint_that_does_not_fit_is_refused(tmp_path):
    from safetensors.numpy import save_file

    graph = compile_file("spec/lenet5.arch").graphs["LeNet5"]
    weights = random_weights(graph)
    del weights["conv1.bias"]
    weights["fc1.weight"] = np.zeros((120, 401), np.float32)
    weights["extra.weight"] = np.zeros((3,), np.float32)
    save_file(weights, str(tmp_path / "bad.safetensors"))
    out = tmp_path / "x.onnx"
    proc = _dlc("export", "onnx", "spec/lenet5.arch", "--weights", str(tmp_path / "bad.safetensors"), "-o", str(out))
    assert proc.returncode == 1 and not out.exists()
    assert "missing key `conv1.bias` (expected shape [6])" in proc.stderr
    assert "key `fc1.weight` has shape [120, 401], the spec needs [120, 400]" in proc.stderr
    assert "unexpected key `extra.weight`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_external_data(tmp_path):
    out = tmp_path / "digits.onnx"
    assert _dlc("export", "onnx", "spec/digits_cnn.arch", "--external-data", "-o", str(out)).returncode == 0
    assert (tmp_path / "digits.onnx.data").stat().st_size > 4 * 50_000
    assert out.stat().st_size < 50_000
    graph = compile_file("spec/digits_cnn.arch").graphs["DigitsCNN"]
    inline = ort.InferenceSession(emit_onnx(graph, random_weights(graph)).SerializeToString())
    feeds = random_inputs(graph, {"B": 2, "H": 8, "W": 8})
    np.testing.assert_array_equal(ort.InferenceSession(str(out)).run(None, feeds)[0], inline.run(None, feeds)[0])


def test_an_op_without_onnx_form_is_a_diagnostic(tmp_path):
    spec = tmp_path / "ada.arch"
    spec.write_text("network N {\n  input x: f32[B, 3, 10, 10]\n  output y = x -> adaptive_avgpool2d(3)\n}\n")
    proc = _dlc("export", "onnx", str(spec), "-o", str(tmp_path / "n.onnx"))
    assert proc.returncode == 1 and "error[E0602]" in proc.stderr and "adaptive_avgpool2d" in proc.stderr
    assert not (tmp_path / "n.onnx").exists()


def test_weights_are_seeded():
    graph = compile_file("spec/lenet5.arch").graphs["LeNet5"]
    a, b, c = random_weights(graph, 0), random_weights(graph, 0), random_weights(graph, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a["conv1.weight"], c["conv1.weight"])

