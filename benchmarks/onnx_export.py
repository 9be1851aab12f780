"""Time and peak memory of `dlc export onnx` on the largest zoo models, one process each.

    python benchmarks/onnx_export.py [spec ...]

Prints, per spec: parameters, export wall time, peak resident memory of the exporting process,
its ratio to the weights' bytes, and the file size. Peak memory is what matters for "export
without blowing memory": `build_onnx` keeps the weights as the numpy arrays they are and
`save_onnx` writes them from there (compiler/emit/onnx/stream.py), so the peak is the weights
once plus the interpreter; `emit_onnx` (a whole ModelProto) would hold them twice.
benchmarks/memory.py measures compile and load the same way.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["spec/vgg16.arch", "spec/gpt2.arch", "spec/bert.arch:Bert", "spec/resnet50.arch"]  # FILE[:MODEL]
CHILD = """
import resource, sys
from dlc.cli import main
status = main(["export", "onnx", sys.argv[1], "-o", sys.argv[2], *(["--model", sys.argv[3]] if sys.argv[3] else [])])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
sys.exit(status)
"""


def main() -> None:
    specs = sys.argv[1:] or DEFAULT
    print(f"{'spec':22} {'params':>12} {'seconds':>8} {'peak RSS MB':>12} {'peak/weights':>12} {'file MB':>8}")
    for entry in specs:
        spec, _, model = entry.partition(":")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.onnx"
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, spec, str(out), model], capture_output=True, text=True,
                                  cwd=ROOT)
            seconds = time.perf_counter() - t
            if proc.returncode:
                print(f"{entry:22} failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            peak = int(proc.stdout.strip().splitlines()[-1])
            size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
            params = _params(spec, model)
            weights_mb = _weight_bytes(spec, model) / 2**20  # MiB, like ru_maxrss // 1024
            print(f"{entry:22} {params:12,d} {seconds:8.1f} {peak:12,d} {peak / weights_mb:12.2f} {size:8.1f}")


def _graph(spec: str, model: str):
    from dlc.compiler.pipeline import compile_file

    graphs = compile_file(ROOT / spec, model or None).graphs
    return graphs[model] if model else list(graphs.values())[-1]


def _params(spec: str, model: str) -> int:
    from dlc.compiler.passes.cost import count_costs

    return count_costs(_graph(spec, model)).total_params


def _weight_bytes(spec: str, model: str) -> int:
    import math

    from dlc.compiler.checkpoint import weight_dtype

    graph = _graph(spec, model)
    return sum(math.prod(w.shape) * weight_dtype(w).itemsize for w in graph.weights)


if __name__ == "__main__":
    main()
