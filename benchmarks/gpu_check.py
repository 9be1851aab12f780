"""Run `dlc compile --target cuda` artifacts on a real GPU: outputs against the CPU artifact, latency
against the generated PyTorch module in eager mode on the same GPU.

    python benchmarks/gpu_check.py CASES.json

CASES.json lists {"name", "artifact", "x", "y_ref", "generated", "class", "input", "output"}:
the artifact directory, an input .npy, the CPU artifact's output for it (same weights and seed),
and the generated PyTorch file and class to time. Needs only numpy, TVM's runtime (libtvm_runtime
plus its CUDA sidecar; `TVM_USE_RUNTIME_LIB=1` is enough) and, for the eager baseline, torch with CUDA.
It loads `runtime/artifact.py` from this checkout directly, so nothing needs installing.
"""
from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _runtime():
    spec = importlib.util.spec_from_file_location("dlc_artifact", ROOT / "runtime" / "artifact.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(artifact_module, path):
    try:
        return artifact_module.load(path), os.environ.get("TVM_CUDA_COMPILE_MODE", "nvrtc")
    except Exception as err:  # noqa: BLE001 - NVRTC missing or failing: try nvcc before giving up
        print(f"  load with NVRTC failed ({str(err).splitlines()[-1][:200]}); retrying with nvcc", flush=True)
        os.environ["TVM_CUDA_COMPILE_MODE"] = "nvcc"
        return artifact_module.load(path), "nvcc"


def main() -> None:
    artifact_module = _runtime()
    cases = json.loads(Path(sys.argv[1]).read_text())
    import torch

    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}", flush=True)
    for case in cases:
        print(f"== {case['name']}", flush=True)
        x = np.load(case["x"])
        started = time.perf_counter()
        model, mode = _load(artifact_module, case["artifact"])
        load_s = time.perf_counter() - started
        y = model(**{case["input"]: x})[case["output"]]
        y_ref = np.load(case["y_ref"])
        diff = float(np.abs(y - y_ref).max())
        print(f"  loaded in {load_s:.1f} s (kernels compiled at load by {mode}); "
              f"max |cuda - cpu| = {diff:.2e} (output scale {np.abs(y_ref).max():.2e})", flush=True)
        import tvm.runtime

        args = [tvm.runtime.tensor(x, model.device), *model._params]
        timer = model._vm.time_evaluator("main", model.device, number=20, repeat=5)
        tvm_ms = 1e3 * statistics.median(timer(*args).results)
        host = []
        for _ in range(50):
            t = time.perf_counter()
            model(**{case["input"]: x})
            host.append(time.perf_counter() - t)

        namespace: dict = {}
        source = (ROOT / case["generated"]).read_text()
        exec(compile(source, case["generated"], "exec"), namespace)  # noqa: S102 - our generated code
        module = namespace[case["class"]]().eval().cuda()
        xt = torch.from_numpy(x).cuda()
        with torch.inference_mode():
            for _ in range(10):
                module(xt)
            torch.cuda.synchronize()
            times = []
            for _ in range(50):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                module(xt)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
        eager_ms = statistics.median(times)
        print(f"  dlc/TVM (dlight schedules, untuned): {tvm_ms:.3f} ms on the GPU, "
              f"{1e3 * statistics.median(host):.3f} ms with numpy in/out; PyTorch eager: {eager_ms:.3f} ms; "
              f"eager / dlc = {eager_ms / tvm_ms:.2f}", flush=True)
        print(json.dumps({"case": case["name"], "max_abs_diff": diff, "load_s": load_s, "tvm_ms": tvm_ms,
                          "tvm_host_ms": 1e3 * statistics.median(host), "eager_ms": eager_ms, "compile_mode": mode}))


if __name__ == "__main__":
    main()
