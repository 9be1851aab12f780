"""Per-kernel time of a compiled dlc artifact, in place (inside the running model).

    python benchmarks/profile_artifact.py ARTIFACT [--calls 40] [--threads N]

Times every call the Relax VM makes (fused kernels and VM builtins) through the VM's instrument
hook, over `--calls` runs of the model, and prints for each: how often one run calls it, the sum
of its fastest calls, and the median per run. Compare with the tuning summary of
`dlc compile --tune` (the runner's best, warm caches) to see what the model loses in place.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--threads", type=int, help="TVM_NUM_THREADS (default: the artifact's num-cores)")
    args = parser.parse_args()
    if args.threads:
        os.environ["TVM_NUM_THREADS"] = str(args.threads)
    from dlc.runtime import load

    model = load(args.artifact)  # sets the thread count, runs main_transform_params
    manifest, vm = model.manifest, model._vm
    dims = manifest.get("dims", {})
    rng = np.random.default_rng(0)
    import tvm.runtime

    inputs = []
    for spec in manifest["inputs"]:
        shape = [d if isinstance(d, int) else dims.get(d, 1) for d in spec["shape"]]
        array = rng.standard_normal(shape) if spec["dtype"].startswith("float") else rng.integers(0, 2, shape)
        inputs.append(tvm.runtime.tensor(array.astype(spec["dtype"]), model.device))
    for _ in range(5):
        vm["main"](*inputs, *model._params)
    whole = []
    for _ in range(args.calls):
        start = time.perf_counter()
        vm["main"](*inputs, *model._params)
        whole.append(time.perf_counter() - start)

    spans: dict[str, list[float]] = defaultdict(list)
    started: dict[str, float] = {}

    def instrument(func, name, before, result, *call_args):
        if before:
            started[name] = time.perf_counter()
        else:
            spans[name].append(time.perf_counter() - started[name])
        return 0

    vm.set_instrument(instrument)
    for _ in range(args.calls):
        vm["main"](*inputs, *model._params)
    rows = []
    for name, times in spans.items():
        per_run = len(times) // args.calls
        table = np.asarray(times[: per_run * args.calls]).reshape(args.calls, per_run)
        rows.append((name, per_run, table.min(axis=0).sum() * 1e3, float(np.median(table.sum(axis=1))) * 1e3))
    print(f"{manifest['model']}: whole model fastest {min(whole) * 1e3:.2f} ms, median "
          f"{np.median(whole) * 1e3:.2f} ms over {args.calls} runs (uninstrumented)")
    print(f"{'call':44s} {'per run':>7s} {'fastest':>10s} {'median':>10s}")
    for name, per_run, fastest, median in sorted(rows, key=lambda r: -r[3]):
        print(f"{name[:44]:44s} {per_run:>7d} {fastest:8.3f}ms {median:8.3f}ms")
    print(f"{'sum':44s} {'':>7s} {sum(r[2] for r in rows):8.3f}ms {sum(r[3] for r in rows):8.3f}ms")


if __name__ == "__main__":
    main()
