"""Peak memory of export, compile and load against the size of the weights, one process each.

    python benchmarks/memory.py [--steps export,stream,compile,load] [spec ...]

For each spec (default: resnet18 and vgg16) and step, a fresh Python process runs the step and
reports its peak resident memory (`ru_maxrss`) and its resident memory after the imports the step
needs (the baseline: interpreter, numpy, onnx, TVM), so a ratio can be read with and without it:

    export   `dlc export onnx SPEC -o model.onnx` through `dlc.cli.main`, as a user runs it
    stream   `build_onnx` + `save_onnx`: the export with the weights held once
    compile  `dlc compile SPEC --target llvm -o ART` (untuned)
    load     `dlc.runtime.load(ART)` and one call on random inputs at batch 1 (needs `compile`)

`weights MB` is the bytes of the network's parameters and buffers (float32, int64 step counters),
in 10^6 bytes like the other columns. Timings are not the point (see onnx_export.py and bench).
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["spec/resnet18.arch", "spec/vgg16.arch"]
STEPS = ["export", "stream", "compile", "load"]

# Each child prints one JSON line: {"baseline": MB after imports, "peak": MB at the end}.
PRELUDE = """
import json, resource, sys
from pathlib import Path
def rss_mb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) * 1024 / 1e6
def done(status=0):
    print(json.dumps({"baseline": baseline, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6}))
    sys.exit(status)
spec, out = sys.argv[1], Path(sys.argv[2])
"""
CHILDREN = {
    "export": """
import onnx, numpy
from dlc.cli import main
from dlc.compiler.emit.onnx import emit_onnx
baseline = rss_mb()
done(main(["export", "onnx", spec, "-o", str(out / "model.onnx")]))
""",
    "stream": """
import onnx, numpy
from dlc.compiler.checkpoint import random_weights
from dlc.compiler.emit.onnx import build_onnx, save_onnx
from dlc.compiler.pipeline import compile_file
baseline = rss_mb()
graph = list(compile_file(spec).graphs.values())[-1]
save_onnx(build_onnx(graph, random_weights(graph)), out / "model.onnx")
done()
""",
    "compile": """
import tvm, onnx, numpy
from dlc.cli import main
from dlc.compiler.backends.tvm import build
baseline = rss_mb()
done(main(["compile", spec, "--target", "llvm", "-o", str(out / "art")]))
""",
    "load": """
import numpy as np
import tvm.runtime, tvm.runtime.vm
import dlc.runtime
baseline = rss_mb()
model = dlc.runtime.load(out / "art")
rng = np.random.default_rng(0)
feeds = {i["name"]: rng.standard_normal([d if isinstance(d, int) else 1 for d in i["shape"]]).astype(i["dtype"])
         for i in model.inputs}
model(**feeds)
done()
""",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT)
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}")
    args = parser.parse_args()
    steps = args.steps.split(",")
    print(f"{'spec':22} {'step':8} {'weights MB':>10} {'baseline MB':>11} {'peak RSS MB':>11} "
          f"{'peak/weights':>12} {'(peak-base)/weights':>19}")
    for spec in args.specs:
        weights = weight_mb(spec)
        with tempfile.TemporaryDirectory() as tmp:
            for step in steps:
                result = run_step(step, spec, Path(tmp))
                if isinstance(result, str):
                    print(f"{spec:22} {step:8} failed: {result}")
                    continue
                base, peak = result["baseline"], result["peak"]
                print(f"{spec:22} {step:8} {weights:10,.0f} {base:11,.0f} {peak:11,.0f} {peak / weights:12.2f} "
                      f"{(peak - base) / weights:19.2f}", flush=True)


def run_step(step: str, spec: str, tmp: Path) -> dict | str:
    """The child's {"baseline", "peak"}, or the last line of its error."""
    proc = subprocess.run([sys.executable, "-c", PRELUDE + CHILDREN[step], spec, str(tmp)], capture_output=True,
                          text=True, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        return (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return json.loads(lines[-1])


def weight_mb(spec: str) -> float:
    """The bytes of the last network's weights, in MB (10^6 bytes)."""
    from dlc.compiler.checkpoint import weight_dtype
    from dlc.compiler.pipeline import compile_file

    graph = list(compile_file(ROOT / spec).graphs.values())[-1]
    return sum(math.prod(w.shape) * weight_dtype(w).itemsize for w in graph.weights) / 1e6


if __name__ == "__main__":
    main()
