"""Time and peak memory of `dlc export onnx` on the largest zoo models, one process each.

    python benchmarks/onnx_export.py [spec ...]

Prints, per spec: parameters, export wall time, peak resident memory of the exporting process,
and the file size. Peak memory is what matters for "export without blowing memory": the weights
are held once as numpy arrays and once inside the ONNX protobuf.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["spec/vgg16.arch", "spec/gpt2.arch", "spec/bert.arch", "spec/resnet50.arch"]
CHILD = """
import resource, sys
from dlc.cli import main
status = main(["export", "onnx", sys.argv[1], "-o", sys.argv[2]])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
sys.exit(status)
"""


def main() -> None:
    specs = sys.argv[1:] or DEFAULT
    print(f"{'spec':22} {'params':>12} {'seconds':>8} {'peak RSS MB':>12} {'file MB':>8}")
    for spec in specs:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.onnx"
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, spec, str(out)], capture_output=True, text=True,
                                  cwd=ROOT)
            seconds = time.perf_counter() - t
            if proc.returncode:
                print(f"{spec:22} failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            peak = int(proc.stdout.strip().splitlines()[-1])
            size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
            params = _params(spec)
            print(f"{spec:22} {params:12,d} {seconds:8.1f} {peak:12,d} {size:8.1f}")


def _params(spec: str) -> int:
    from dlc.compiler.passes.cost import count_costs
    from dlc.compiler.pipeline import compile_network

    return count_costs(compile_network(ROOT / spec)).total_params


if __name__ == "__main__":
    main()
