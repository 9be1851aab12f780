"""Shared test helpers: the repository root, and compiling spec text in a temporary file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlc.compiler.pipeline import Compilation, compile_file

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    """Diagnostics print paths relative to the working directory; run every test from the root."""
    monkeypatch.chdir(ROOT)


def compile_text(text: str, tmp_path: Path, name: str = "t.arch", model: str | None = None) -> Compilation:
    path = tmp_path / name
    path.write_text(text)
    return compile_file(path, model)


def error_codes(result: Compilation) -> list[str]:
    return [d.code for d in result.diagnostics]


UPDATE_GOLDEN = os.environ.get("DLC_UPDATE_GOLDEN") == "1"


def torch_weights(module) -> dict:
    """A module's state_dict as numpy arrays (tied weights appear under every name)."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def random_inputs(graph, env: dict[str, int], seed: int = 0, int_high: int = 2) -> dict:
    """Random numpy inputs for a graph at the sizes in `env` (integer ids in [0, int_high))."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for name, vid in graph.inputs:
        t = graph.values[vid].type
        shape = [d.evaluate(env) for d in t.shape]
        if t.dtype in ("i64", "i32"):
            out[name] = rng.integers(0, int_high, shape).astype(np.int64 if t.dtype == "i64" else np.int32)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def onnx_vs_torch(spec: Path, model: str | None = None, batches=(2, 3), dims: dict | None = None,
                  atol: float = 1e-5, rtol: float = 1e-5, int_high: int = 2):
    """Export `model` of `spec` to ONNX with the generated PyTorch module's weights and compare
    ONNX Runtime's outputs with the module's (eval mode) at each batch size. Returns the ONNX model."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from dlc.compiler.emit.torch import torch_namespace
    from dlc.compiler.emit.onnx import emit_onnx
    from dlc.compiler.pipeline import default_graph

    result = compile_file(spec, model)
    result.raise_for_errors()
    graph = default_graph(result, model)
    torch.manual_seed(0)
    module = getattr(torch_namespace(spec), graph.name)().eval()
    weights = torch_weights(module)
    onnx_model = emit_onnx(graph, {w.name: weights[w.name] for w in graph.weights})
    assert [o.name for o in onnx_model.graph.output] == [n for n, _ in graph.outputs]
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in batches:
        env = {**dict(graph.dim_examples), **(dims or {}), "B": batch}
        feeds = random_inputs(graph, env, seed=batch, int_high=int_high)
        with torch.no_grad():
            expected = module(*(torch.from_numpy(feeds[n]) for n, _ in graph.inputs))
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run([n for n, _ in graph.outputs], feeds)
        for (name, _), e, g in zip(graph.outputs, expected, got, strict=True):
            np.testing.assert_allclose(g, e.numpy(), atol=atol, rtol=rtol, err_msg=f"{graph.name}.{name}, B={batch}")
    return onnx_model


def train_here(spec: Path, out: Path, *flags: str) -> tuple[int, str]:
    """`dlc train SPEC -o OUT --quiet FLAGS` in this process on one thread (a smoke run's cost is
    mostly thread start-up on 2 cores): its exit status and stderr."""
    import contextlib
    import io

    import torch

    from dlc.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(["train", str(spec), "-o", str(out), "--quiet", *flags])
    finally:
        torch.set_num_threads(threads)
    return code, err.getvalue()
