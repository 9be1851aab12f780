"""`dlc emit torch --standalone`: the helper layers copied in give the same modules as importing them."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import ROOT, SPEC, random_inputs
from dlc.compiler.emit.torch import torch_source
from dlc.compiler.pipeline import compile_file

# specs whose modules use helper layers: masked convolutions, LSTMs and additive attention, mha
HELPED = [("pixelcnn.arch", "PixelCNN", {}), ("seq2seq.arch", "Seq2Seq", {"S": 5, "T": 4}),
          ("siamese.arch", "SiameseCosine", {})]


def _namespace(source: str, name: str) -> dict:
    namespace: dict = {"__name__": name}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace


def test_default_files_import_the_helpers_and_standalone_files_copy_them():
    imported, standalone = torch_source(SPEC / "seq2seq.arch"), torch_source(SPEC / "seq2seq.arch", standalone=True)
    assert "from dlc.runtime.layers import AdditiveAttention, LSTM" in imported
    assert "class LSTM(" not in imported
    assert "dlc" not in standalone.split('"""', 2)[2].split("__all__")[0]  # no import of dlc at all
    assert "class LSTM(nn.LSTM):" in standalone and "class AdditiveAttention(nn.Module):" in standalone
    assert "class Reshape(" not in standalone  # only the helpers the file uses


@pytest.mark.parametrize("spec, model, env", HELPED, ids=[h[1] for h in HELPED])
def test_standalone_module_equals_the_importing_one(spec, model, env):
    graph = compile_file(SPEC / spec).graphs[model]
    ours = _namespace(torch_source(SPEC / spec), "imported")[model]
    alone = _namespace(torch_source(SPEC / spec, standalone=True), "standalone")[model]
    torch.manual_seed(0)
    a = ours().eval()
    b = alone().eval()
    b.load_state_dict(a.state_dict())
    assert list(a.state_dict()) == list(b.state_dict())
    feeds = random_inputs(graph, {"B": 2, **env}, int_high=8)
    with torch.no_grad():
        outs_a = a(*(torch.from_numpy(feeds[n]) for n, _ in graph.inputs))
        outs_b = b(*(torch.from_numpy(feeds[n]) for n, _ in graph.inputs))
    outs_a = outs_a if isinstance(outs_a, tuple) else (outs_a,)
    outs_b = outs_b if isinstance(outs_b, tuple) else (outs_b,)
    assert len(outs_a) == len(graph.outputs)
    for x, y in zip(outs_a, outs_b, strict=True):
        assert torch.equal(x, y)


def test_standalone_file_runs_without_dlc(tmp_path):
    """The copied file needs torch only: run it in a process where `dlc` cannot be imported."""
    out = tmp_path / "pixelcnn.py"
    proc = subprocess.run([sys.executable, "-m", "dlc", "emit", "torch", "--standalone", "spec/pixelcnn.arch",
                           "-o", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    code = ("import sys; sys.modules['dlc'] = None; import torch, pixelcnn; "
            "m = pixelcnn.PixelCNN().eval(); y = m(torch.zeros(1, 1, 28, 28)); print(tuple(y.shape))")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(1, 256, 28, 28)"
    assert out.exists()
