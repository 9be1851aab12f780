"""Tuner checks too slow for the suite (two minutes of MetaSchedule on 2 cores): exits 1 on a failure.

    python benchmarks/tune_checks.py

Siblings share their best schedules: a basic block runs the same 3x3 conv twice (+ ReLU, and +
residual add + ReLU); after `dlc compile --tune 6` each of the two tasks holds the other's best
schedules, replayed on it and measured, and the tuned artifact computes what the untuned one does.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlc.compiler.backends.tvm.tune import decisions  # noqa: E402
from dlc.runtime import load  # noqa: E402

TINY_RESNET = """import "std/resnet.arch"

network TinyRes {
  input x: f32[B, 8, 8, 8]
  output y = x -> BasicBlock(8, 8) -> global_avgpool -> flatten
}
"""


def dlc(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlc", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def siblings_share_their_best_schedules(tmp: Path) -> None:
    from tvm.s_tir import meta_schedule as ms
    import tvm_ffi

    spec = tmp / "tinyres.arch"
    spec.write_text(TINY_RESNET)
    db = tmp / "db"
    proc = dlc("compile", spec, "--tune", 6, "--tune-db", db, "-o", tmp / "tuned")
    assert proc.returncode == 0, proc.stderr
    transferred = json.loads((tmp / "tuned" / "manifest.json").read_text())["tuning"]["transferred"]
    assert transferred >= 2 and "from siblings" in proc.stderr, (transferred, proc.stderr)

    chosen: dict[int, set[str]] = {}
    for record in ms.database.JSONDatabase(work_dir=str(db)).get_all_tuning_records():
        if sum(inst.kind.name == "SamplePerfectTile" for inst in record.trace.insts) == 7:  # a conv's 7 loops
            chosen.setdefault(tvm_ffi.structural_hash(record.workload.mod), set()).add(decisions(record.trace))
    assert len(chosen) == 2, len(chosen)
    first, second = chosen.values()
    shared = len(first & second)
    assert shared >= 2, (first, second)  # each holds the other's own search results

    assert dlc("compile", spec, "-o", tmp / "untuned").returncode == 0
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(load(tmp / "tuned")(x=x)["y"], load(tmp / "untuned")(x=x)["y"], rtol=1e-5, atol=1e-5)
    print(f"siblings share their best schedules: {transferred} transferred, {shared} schedules in both tasks")


def main() -> int:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            siblings_share_their_best_schedules(Path(tmp))
        except AssertionError as err:
            print(f"FAILED: siblings share their best schedules: {err}")
            return 1
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
