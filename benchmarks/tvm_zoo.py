"""Every zoo network at its full size through the TVM backend, against the generated PyTorch module.

    python benchmarks/tvm_zoo.py [Name ...]

The suite (tests/test_tvm.py) builds the large networks in small configurations and leaves
AlexNet, VGG16, GoogLeNet, ResNet50 and DenseNet121 to this script: an untuned build of each takes
up to a minute on 2 cores. Each network is built untuned for this CPU with the generated module's
seeded weights, run at batch 1 (sequences of 16 / 12), and compared; prints a table of build
seconds and the largest difference, and exits 1 if any is above 1e-4 (a refusal, such as
Seq2Seq's LSTM, is listed as such).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlc.compiler.backends.tvm.artifact import write_artifact  # noqa: E402
from dlc.compiler.backends.tvm.build import build  # noqa: E402
from dlc.compiler.backends.tvm.targets import resolve_target  # noqa: E402
from dlc.compiler.emit.torch import torch_namespace  # noqa: E402
from dlc.compiler.errors import EmitError  # noqa: E402
from dlc.compiler.pipeline import compile_file  # noqa: E402
from dlc.runtime import load  # noqa: E402

SHORT = {"T": 16, "S": 12, "B": 1}


def inputs(graph, env: dict[str, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for name, vid in graph.inputs:
        t = graph.values[vid].type
        shape = [d.evaluate(env) for d in t.shape]
        out[name] = (rng.integers(0, 2, shape).astype(np.int64) if t.dtype == "i64"
                     else rng.standard_normal(shape).astype(np.float32))
    return out


def check(spec: Path, name: str, folder: Path) -> tuple[float, str]:
    graph = compile_file(spec, name).graphs[name]
    torch.manual_seed(0)
    module = getattr(torch_namespace(spec), name)().eval()
    weights = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    target = resolve_target("llvm")
    t0 = time.perf_counter()
    try:
        built = build(graph, {w.name: weights[w.name] for w in graph.weights}, target, "0" * 64,
                      f"spec/{spec.name}")
    except EmitError as err:
        return time.perf_counter() - t0, f"refused: {err.diag.message}"
    write_artifact(built, target, folder / name)
    seconds = time.perf_counter() - t0
    feeds = inputs(graph, {**dict(graph.dim_examples), **SHORT})
    got = load(folder / name)(**feeds)
    with torch.no_grad():
        expected = module(*(torch.from_numpy(feeds[n]) for n, _ in graph.inputs))
    expected = expected if isinstance(expected, tuple) else (expected,)
    diff = max(float(np.abs(got[out] - e.numpy()).max()) for (out, _), e in zip(graph.outputs, expected, strict=True))
    return seconds, f"{diff:.2e}"


def main(names: list[str]) -> int:
    bad = 0
    print("| spec | network | build s | max abs diff |\n|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in sorted((ROOT / "spec").glob("*.arch")):
            for name in compile_file(spec).graphs:
                if names and name not in names:
                    continue
                seconds, result = check(spec, name, Path(tmp))
                bad += not result.startswith("refused") and float(result) > 1e-4
                print(f"| {spec.name} | {name} | {seconds:.1f} | {result} |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
