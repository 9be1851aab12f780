"""One 3x3 conv + ReLU layer tuned alone: Winograd against the direct conv against eager PyTorch.

    python benchmarks/conv_layer.py CHANNELS SIZE [--trials 192] [--direct | --tile 2|4] [--tune-db DIR]
                                   [--threads 2]

Builds `relu(conv2d(x, w, padding=1))` on a 1 x CHANNELS x SIZE x SIZE input as dlc's TVM backend
prepares it for this CPU (build.prepare with winograd=True, as `dlc compile --tune N --winograd`:
Winograd where winograd.tile_for gives a tile; the direct conv with `--direct`, as without
`--winograd`; F(TILE x TILE, 3x3) whatever the layer with `--tile`), tunes it with
dlc's tuner (`--trials`, into `--tune-db`, default a new directory under /tmp; a rerun on the same
database measures nothing), and prints the runner's best, the median in this process (the
artifact's thread count), the median when every call reads its weights from memory (copies cycled
past the L3 cache, as in a whole model), eager PyTorch's medians measured both ways on the same
thread count, the largest difference between the outputs, and what the tuner's check of the
records against the untuned PrimFunc found (verify.py; a rejection is also said on stderr). The figures behind
winograd.py's limits (docs/tvm-tuning-notes.md, "Winograd for the wide 3x3 convs") came from
this layer setup.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAST_L3_BYTES = 64 << 20  # twice this machine's 32 MiB L3: weight copies cycled through it come from memory


def copies_past_l3(nbytes: int) -> int:
    """How many copies of `nbytes` of weights to cycle so that no call finds its weights in cache."""
    return -(-PAST_L3_BYTES // nbytes) + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("channels", type=int)
    ap.add_argument("size", type=int)
    ap.add_argument("--trials", type=int, default=192)
    kind = ap.add_mutually_exclusive_group()
    kind.add_argument("--direct", action="store_true", help="keep the direct conv even where Winograd applies")
    kind.add_argument("--tile", type=int, choices=(2, 4),
                      help="force Winograd F(TILE x TILE, 3x3), whatever the channels and the weights' size")
    ap.add_argument("--tune-db", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))

    import torch
    import tvm
    from tvm import relax

    from dlc.compiler.backends.tvm import build as backend, targets
    from dlc.compiler.backends.tvm import tune as tvm_tune, winograd as tvm_winograd

    c, size = args.channels, args.size
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape=(1, c, size, size), dtype="float32"))
    w = relax.Var("w", relax.TensorType(shape=(c, c, 3, 3), dtype="float32"))
    with bb.function("main", [x, w], attrs={"num_input": 1}):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.relu(bb.emit(relax.op.nn.conv2d(x, w, padding=[1, 1]))))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    spec = targets.resolve_target("llvm")
    target = tvm.target.Target({**spec.target, "num-cores": args.threads})
    if args.tile:
        tvm_winograd.TILES, tvm_winograd.MAX_WEIGHT_BYTES, tvm_winograd.MIN_CHANNELS = (args.tile,), sys.maxsize, 1
    mod = backend.prepare(bb.get(), target, winograd=not args.direct)
    kernels = [gv.name_hint for gv in mod.functions if gv.name_hint.startswith("fused_")]
    db = args.tune_db or Path(tempfile.mkdtemp(prefix="dlc-conv-layer-"))
    started = time.time()
    report, database = tvm_tune.tune(mod, target, db, args.trials)
    minutes = (time.time() - started) / 60
    vm = relax.VirtualMachine(backend.lower(mod, target, database), tvm.cpu())

    rng = np.random.default_rng(0)
    xn = rng.standard_normal((1, c, size, size), dtype=np.float32)
    wn = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    params = [tvm.runtime.tensor(wn)]
    if any(gv.name_hint == backend.TRANSFORM_PARAMS for gv in mod.functions):
        params = list(vm[backend.TRANSFORM_PARAMS](params))
    xt = tvm.runtime.tensor(xn)
    in_process = np.median(vm.time_evaluator("main", tvm.cpu(), number=20, repeat=10)(xt, *params).results)
    got = vm["main"](xt, *params).numpy()
    # in a model every layer's weights come from memory, not from the cache the last call filled
    nbytes = sum(p.numpy().nbytes for p in params)
    copies = [[tvm.runtime.tensor(p.numpy().copy()) for p in params] for _ in range(copies_past_l3(nbytes))]
    cold = []
    for k in range(200):
        start = time.perf_counter()
        vm["main"](xt, *copies[k % len(copies)])
        cold.append(time.perf_counter() - start)

    torch.set_num_threads(args.threads)
    xs, ws = torch.from_numpy(xn), torch.from_numpy(wn)
    with torch.no_grad():
        expected = torch.relu(torch.nn.functional.conv2d(xs, ws, padding=1)).numpy()
        for _ in range(10):
            torch.relu(torch.nn.functional.conv2d(xs, ws, padding=1))
        times = []
        for _ in range(50):
            t = time.perf_counter()
            torch.relu(torch.nn.functional.conv2d(xs, ws, padding=1))
            times.append(time.perf_counter() - t)
        weights = [ws.clone() for _ in range(copies_past_l3(wn.nbytes))]
        eager_cold = []
        for k in range(200):
            t = time.perf_counter()
            torch.relu(torch.nn.functional.conv2d(xs, weights[k % len(weights)], padding=1))
            eager_cold.append(time.perf_counter() - t)
    best = report.tasks[0].best_s if report.tasks else None
    print(f"{c} ch, {size}x{size}, {', '.join(kernels)}: {report.trials} trials in {minutes:.1f} min")
    print(f"  runner best {best * 1e3:.3f} ms" if best else "  runner best -")
    print(f"  in process  {in_process * 1e3:.3f} ms ({os.environ['TVM_NUM_THREADS']} threads)")
    print(f"  weights from memory {np.median(cold) * 1e3:.3f} ms ({nbytes / 2**20:.1f} MiB of weights per call)")
    print(f"  eager       {np.median(times) * 1e3:.3f} ms; weights from memory {np.median(eager_cold) * 1e3:.3f} ms")
    print(f"  max |dlc - eager| {np.abs(got - expected).max():.2e} (outputs up to {np.abs(expected).max():.2f})")
    verified = report.verified
    print(f"  check against the untuned PrimFunc: {verified.checked} records run in {verified.seconds:.1f} s, "
          f"{len(verified.rejected)} rejected")


if __name__ == "__main__":
    main()
