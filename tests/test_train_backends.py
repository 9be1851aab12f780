"""What `dlc train` writes is what the backends take: a small conv-BN-ReLU-pool-dropout-linear
digits classifier trained for 2 epochs (a few seconds, inside this process), then its
best.safetensors loaded into the generated PyTorch module, exported to ONNX and compiled for TVM
with `--weights`, unchanged. All three must give the same test-split predictions (logits within
1e-4) and the accuracy the run's summary.json reports; eval-mode semantics matter here (batch-norm
running statistics, dropout off). A checkpoint that fits another network, and the resume state
`last.state.pt`, are refused with a diagnostic, never a traceback.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import dlc
from dlc.cli import main

SPEC = """\
network Net(num_classes=10) {
  input x: f32[B, 1, 8, 8]
  h = x -> conv: conv2d(16, 3, padding=1, bias=false) -> bn: batchnorm2d -> relu -> maxpool2d(2)
  output logits = h -> flatten -> dropout(0.3) -> head: linear(num_classes)    # (B, 10)
}

# the same body with a 5-way head: Net's checkpoint does not fit it
network Other {
  input x: f32[B, 1, 8, 8]
  h = x -> conv: conv2d(16, 3, padding=1, bias=false) -> bn: batchnorm2d -> relu -> maxpool2d(2)
  output logits = h -> flatten -> dropout(0.3) -> head: linear(5)
}

train Digits {
  data digits(size=8)
  model net = Net(num_classes=10)
  config batch=32, epochs=2, seed=0, best="accuracy"
  optimizer adamw(lr=3e-3, weight_decay=1e-4)
  input image: f32[B, 1, 8, 8], label: i64[B]
  logits = image -> net
  output loss = (logits, label) -> cross_entropy
  output accuracy = (logits, label) -> accuracy
}
"""
TEST_SIZE = 270  # scikit-learn digits' fixed test split
ATOL = 1e-4


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The spec next to its trained run directory `run/`."""
    root = tmp_path_factory.mktemp("train_backends")
    spec = root / "net.arch"
    spec.write_text(SPEC)
    assert main(["train", str(spec), "-o", str(root / "run"), "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def test_split() -> tuple[np.ndarray, np.ndarray]:
    from dlc.runtime.train.data import load

    split = load("digits", {"size": 8}).splits["test"]
    return split["image"], split["label"]


@pytest.fixture(scope="module")
def torch_logits(run, test_split) -> np.ndarray:
    """The generated module with best.safetensors, eval mode, on the test split: (270, 10)."""
    module = dlc.torch_module(run / "net.arch", "Net")
    module.load_state_dict(load_file(str(run / "run" / "best.safetensors")))  # strict: every key
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(test_split[0])).numpy()


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def _assert_same_predictions(got: np.ndarray, torch_logits: np.ndarray, labels: np.ndarray) -> None:
    assert got.shape == torch_logits.shape == (TEST_SIZE, 10)
    np.testing.assert_allclose(got, torch_logits, atol=ATOL, rtol=ATOL)
    np.testing.assert_array_equal(got.argmax(1), torch_logits.argmax(1))
    assert _accuracy(got, labels) == _accuracy(torch_logits, labels)


def test_run_writes_weights_under_the_network_names(run):
    out = run / "run"
    for name in ("best.safetensors", "last.safetensors", "last.state.pt", "summary.json"):
        assert (out / name).is_file(), name
    best = load_file(str(out / "best.safetensors"))
    module = dlc.torch_module(run / "net.arch", "Net")
    assert set(best) == set(module.state_dict())
    for name in ("best.safetensors", "last.safetensors"):
        module.load_state_dict(load_file(str(out / name)))  # strict: raises on a missing or extra key
    # the running statistics were trained, not left at their initial 0 / 1
    assert best["bn.running_mean"].abs().max() > 1e-3 and (best["bn.running_var"] - 1).abs().max() > 1e-3


def test_pytorch_accuracy_is_the_runs_test_accuracy(run, test_split, torch_logits):
    images, labels = test_split
    assert images.shape == (TEST_SIZE, 1, 8, 8) and images.dtype == np.float32 and labels.dtype == np.int64
    summary = json.loads((run / "run" / "summary.json").read_text())
    accuracy = _accuracy(torch_logits, labels)
    # same weights, same split: the same number of right answers (the run averages in float32)
    assert round(accuracy * TEST_SIZE) == round(summary["test"]["accuracy"] * TEST_SIZE)
    assert abs(accuracy - summary["test"]["accuracy"]) < 1 / TEST_SIZE
    assert accuracy > 0.8  # chance is 0.1


def test_eval_mode_matters_for_this_network(run, test_split, torch_logits):
    # without this the backends could agree with a train-mode module by accident
    module = dlc.torch_module(run / "net.arch", "Net")
    module.load_state_dict(load_file(str(run / "run" / "best.safetensors")))
    module.train()
    torch.manual_seed(0)
    with torch.no_grad():
        train_mode = module(torch.from_numpy(test_split[0])).numpy()
    assert np.abs(train_mode - torch_logits).max() > 1e-2


def test_onnx_export_of_the_best_weights_matches_pytorch(run, test_split, torch_logits):
    import onnxruntime as ort

    onnx_path = run / "net.onnx"
    assert main(["export", "onnx", str(run / "net.arch"), "--model", "Net",
                 "--weights", str(run / "run" / "best.safetensors"), "-o", str(onnx_path)]) == 0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    (logits,) = session.run(None, {"x": test_split[0]})
    _assert_same_predictions(logits, torch_logits, test_split[1])


@pytest.fixture(scope="module")
def artifact(run) -> Path:
    art = run / "art"
    assert main(["compile", str(run / "net.arch"), "--model", "Net", "--target", "llvm",
                 "--weights", str(run / "run" / "best.safetensors"), "-o", str(art)]) == 0
    return art


def test_tvm_artifact_of_the_best_weights_matches_pytorch(run, artifact, test_split, torch_logits):
    from dlc.runtime import load

    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["weights_from"] == {"checkpoint": str((run / "run" / "best.safetensors").resolve())}
    model = load(artifact)
    assert model.inputs == [{"name": "x", "dtype": "float32", "shape": ["B", 1, 8, 8]}]
    got = model(x=test_split[0])  # the batch stays dynamic: all 270 at once
    assert list(got) == ["logits"]
    _assert_same_predictions(got["logits"], torch_logits, test_split[1])


def test_dlc_run_on_a_saved_test_split(run, artifact, test_split, torch_logits, capsys):
    np.save(run / "x.npy", test_split[0])
    capsys.readouterr()
    assert main(["run", str(artifact), "--input", str(run / "x.npy"), "--output", str(run / "y.npy")]) == 0
    assert "logits: float32[270, 10]" in capsys.readouterr().out
    _assert_same_predictions(np.load(run / "y.npy"), torch_logits, test_split[1])


def test_a_checkpoint_for_another_head_is_refused_with_a_located_diagnostic(run, capsys):
    out = run / "other_art"
    capsys.readouterr()
    assert main(["compile", str(run / "net.arch"), "--model", "Other",
                 "--weights", str(run / "run" / "best.safetensors"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error[E0405]" in err and "does not fit `Other`" in err
    assert f"--> {run / 'run' / 'best.safetensors'}" in err
    assert f"{run / 'net.arch'}:8:1" in err  # where `Other` is defined
    assert "`head.weight` has shape [10, 256], the spec needs [5, 256]" in err
    assert "`head.bias` has shape [10], the spec needs [5]" in err
    assert "conv.weight" not in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("flags", [[], ["--torch-load"]], ids=["safetensors", "torch-load"])
def test_the_resume_state_is_no_weights_file(run, capsys, flags):
    out = run / f"state_art{len(flags)}"
    capsys.readouterr()
    assert main(["compile", str(run / "net.arch"), "--model", "Net",
                 "--weights", str(run / "run" / "last.state.pt"), *flags, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error[E0107]" in err and "cannot read checkpoint" in err and "last.state.pt" in err
    assert "Traceback" not in err and "internal compiler error" not in err
    assert not out.exists()
