"""Tuning (`dlc compile --tune`), BN folding, load-time weight work and `dlc bench`, at CI budgets.

Real MetaSchedule runs: a one-conv network with a handful of trials into a temporary database; a
second compile against the same database must measure nothing and give the same numbers. That
siblings share their best schedules takes two minutes of tuning: benchmarks/tune_checks.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from conftest import ROOT, SPEC
from dlc.compiler.emit.onnx import emit_onnx
from dlc.compiler.backends.tvm.fold import fold_batchnorm
from dlc.compiler.backends.tvm.tune import _gaps, _runner_threads, allocate, anchor
from dlc.compiler.checkpoint import random_weights
from dlc.compiler.pipeline import compile_file
from dlc.runtime import load


def dlc(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "dlc", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_allocate_gives_every_task_a_trial_then_the_rest_by_cost():
    alloc = allocate([100.0, 10.0, 0.0, 890.0], 104)
    assert sum(alloc) == 104 and min(alloc) >= 1
    assert alloc == [11, 2, 1, 90]
    assert allocate([5.0, 50.0, 1.0], 2) == [1, 1, 0]  # short budgets go to the costliest tasks
    assert allocate([1.0, 1.0], 0) == [0, 0]


def test_second_pass_goes_to_the_task_furthest_behind_its_kind():
    from types import SimpleNamespace as Task

    tasks = [Task(task_name="fused_conv2d_add_relu", weight=1), Task(task_name="fused_conv2d1_add1_relu1", weight=2),
             Task(task_name="max_pool2d", weight=1), Task(task_name="fused_conv2d2_add2", weight=1)]
    # the second conv runs at 200 GFLOP/s: the first could too (1 ms of its 2 ms to win); the
    # fastest of a kind, or the only one, may still win a tenth; a task not measured yet, nothing
    gaps = _gaps(tasks, [200e6, 200e6, 1e6, 50e6], [2e-3, 1e-3, 0.5e-3, None])
    assert gaps == pytest.approx([1e-3, 2e-4, 5e-5, 0.0])
    assert max(range(4), key=gaps.__getitem__) == 0


TINY_CNN = """network TinyCNN {
  input x: f32[B, 1, 12, 12]
  output logits = x -> conv2d(4, 3) -> relu -> maxpool2d(2) -> flatten -> linear(10)
}
"""


def test_tuned_compile_reuses_its_database(tmp_path):
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY_CNN)
    db = tmp_path / "db"
    first = dlc("compile", spec, "--tune", 4, "--tune-db", db, "-o", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    tuning = json.loads((tmp_path / "a" / "manifest.json").read_text())["tuning"]
    assert 1 <= tuning["trials"] <= 4 and tuning["budget"] == 4 and tuning["tasks"] >= 2
    assert "tuning [" in first.stderr and "trials 4/4" in first.stderr  # the progress line
    assert (db / "database_tuning_record.json").stat().st_size > 0

    second = dlc("compile", spec, "--tune", 4, "--tune-db", db, "-o", tmp_path / "b")
    assert second.returncode == 0, second.stderr
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["tuning"]["trials"] == 0 and manifest["tuning"]["tasks_reused"] == manifest["tuning"]["tasks"]
    assert "tuning [" not in second.stderr
    # a tuned artifact is built for the bound shape (batch 1 from the spec's examples)
    assert manifest["inputs"] == [{"name": "x", "dtype": "float32", "shape": [1, 1, 12, 12]}]

    untuned = tmp_path / "c"
    assert dlc("compile", spec, "-o", untuned).returncode == 0
    x = np.random.default_rng(0).standard_normal((1, 1, 12, 12)).astype(np.float32)
    tuned_out = load(tmp_path / "b")(x=x)["logits"]
    np.testing.assert_allclose(tuned_out, load(untuned)(x=x)["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tuned_out, load(tmp_path / "a")(x=x)["logits"], rtol=0, atol=0)


def test_the_time_limit_stops_the_search(tmp_path):
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY_CNN)
    run = dlc("compile", spec, "--tune", 40, "--tune-minutes", 0.01, "--tune-db", tmp_path / "db", "-o", tmp_path / "a")
    assert run.returncode == 0, run.stderr
    tuning = json.loads((tmp_path / "a" / "manifest.json").read_text())["tuning"]
    assert tuning["stopped_by_time"] is True and tuning["minutes"] == 0.01
    assert 0 < tuning["trials"] < 40  # the first task's round (the limit passes during it), nothing after
    assert "the 0.01-minute limit (--tune-minutes) stopped the search" in run.stderr
    x = np.random.default_rng(0).standard_normal((1, 1, 12, 12)).astype(np.float32)
    assert np.isfinite(load(tmp_path / "a")(x=x)["logits"]).all()


@pytest.mark.parametrize(("args", "said"), [
    (["--tune-minutes", "5"], "give --tune N too"),
    (["--tune", "4", "--tune-minutes", "-1"], "--tune-minutes expects a number of minutes >= 0"),
    (["--tune", "4", "--tune-minutes", "nan"], "--tune-minutes expects a number of minutes >= 0"),
])
def test_tune_minutes_is_checked(tmp_path, args, said):
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY_CNN)
    run = dlc("compile", spec, *args, "--tune-db", tmp_path / "db", "-o", tmp_path / "a")
    assert run.returncode == 2 and said in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "a").exists()


def test_tasks_of_the_same_conv_are_siblings():
    assert anchor("fused_conv2d1_add1_relu1") == anchor("fused_conv2d1_add1_add2_relu1") == "conv2d1"
    assert anchor("fused_conv2d_add_relu") == "conv2d" != anchor("fused_conv2d1_add1_relu1")
    assert anchor("max_pool2d") == "max_pool2d"


def test_candidates_are_measured_with_the_targets_thread_count(monkeypatch):
    # MetaSchedule's runner workers are child processes: they must start TVM's pool with the
    # target's num-cores, not TVM's default (hardware_concurrency / 2), and the caller's
    # environment comes back afterwards.
    monkeypatch.setenv("TVM_NUM_THREADS", "2")
    code = "import tvm_ffi, tvm.runtime; print(tvm_ffi.get_global_func('runtime.NumThreads')())"
    with _runner_threads(1):  # TVM caps the pool at the machine's cores
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out.split()[-1]) == 1 and os.environ["TVM_NUM_THREADS"] == "2"


def test_a_timed_out_build_is_killed():
    # TVM's worker pools kill a timed-out worker through psutil; without it the kill raised
    # ImportError, was swallowed, and the build ran on for minutes beside later measurements.
    import time

    import psutil
    from tvm.support.popen_pool import PopenPoolExecutor

    before = {p.pid for p in psutil.Process().children()}
    pool = PopenPoolExecutor(max_workers=1, timeout=2)
    future = pool.submit(time.sleep, 60)
    time.sleep(1)
    workers = [p for p in psutil.Process().children() if p.pid not in before]
    assert workers
    with pytest.raises(TimeoutError):
        future.result()
    pool.shutdown()
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive


def test_tune_refuses_targets_it_cannot_measure_here(tmp_path):
    proc = dlc("compile", "spec/lenet5.arch", "--target", "aarch64", "--tune", "4", "-o", tmp_path / "a")
    assert proc.returncode == 2 and "cannot run `aarch64` code" in proc.stderr and not (tmp_path / "a").exists()
    proc = dlc("compile", "spec/lenet5.arch", "--dim", "Q=3", "-o", tmp_path / "a")
    assert proc.returncode == 2 and "has no input dim Q" in proc.stderr


def test_batchnorm_folds_into_the_conv():
    graph = compile_file(SPEC / "resnet18.arch").graphs["ResNet18"]
    rng = np.random.default_rng(1)
    weights = random_weights(graph, 0)
    stats = 0
    for name, w in weights.items():  # non-trivial statistics, so that folding has work to do
        if name.endswith("running_var"):
            weights[name] = rng.uniform(0.5, 2.0, w.shape).astype(np.float32)
            stats += 1
        elif name.endswith("running_mean"):
            weights[name] = rng.normal(0.0, 0.3, w.shape).astype(np.float32)
            stats += 1
    assert stats == 2 * 20  # every batch norm's mean and variance
    model = emit_onnx(graph, weights)
    folded = fold_batchnorm(model)
    assert sum(n.op_type == "BatchNormalization" for n in model.graph.node) == 20
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    got = ort.InferenceSession(folded.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_weight_only_work_runs_once_at_load(tmp_path):
    art = tmp_path / "r18"
    assert dlc("compile", "spec/resnet18.arch", "--dim", "B=1", "-o", art).returncode == 0
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["transform_params"] == "main_transform_params"
    assert manifest["inputs"][0]["shape"] == [1, 3, 224, 224]
    # the stored weights are the checkpoint's, batch norm folded into the convs (no running stats)
    assert "layer1.0.conv1.weight" in manifest["params"] and not any("running" in p for p in manifest["params"])


def test_bench_reports_three_backends_on_the_same_inputs(tmp_path):
    art = tmp_path / "lenet"
    assert dlc("compile", "spec/lenet5.arch", "--dim", "B=2", "-o", art).returncode == 0
    proc = dlc("bench", art, "--runs", 3, "--warmup", 1, "--threads", 1, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["inputs"] == {"x": [2, 1, 32, 32]} and result["threads"] == 1
    for backend in ("dlc", "torch", "onnxruntime"):
        r = result["results"][backend]
        assert r["runs"] == 3 and 0 < r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
    assert set(result["speedup"]) == {"torch", "onnxruntime"} and all(v > 0 for v in result["speedup"].values())
    assert max(result["max_abs_diff"].values()) < 1e-4  # same weights (the artifact's seed) everywhere
    table = dlc("bench", "spec/lenet5.arch", "--runs", 2, "--warmup", 0)
    assert table.returncode == 0, table.stderr
    assert "PyTorch eager" in table.stdout and "ONNX Runtime" in table.stdout and "dlc (TVM)" in table.stdout


def test_bench_says_what_is_wrong(tmp_path):
    proc = dlc("bench", tmp_path)
    assert proc.returncode == 2 and "neither a spec nor an artifact" in proc.stderr
