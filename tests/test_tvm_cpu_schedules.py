"""The CPU default schedule for matmuls (compiler/backends/tvm/cpu_schedules.py).

Real TVM builds: each case is legalized and fused as `dlc compile` does it, lowered with the rule,
and its output compared with NumPy in float64. Shapes are chosen to leave partial tiles on every
axis (rows, columns, k), where a tiling goes wrong if anywhere.
"""
from __future__ import annotations

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
from tvm import relax, tirx  # noqa: E402

from dlc.compiler.backends.tvm import build as backend, cpu_schedules  # noqa: E402
from dlc.compiler.backends.tvm.targets import resolve_target  # noqa: E402

TARGET = tvm.target.Target({**resolve_target("llvm").target, "num-cores": 2})


def _module(a_shape, b_shape, epilogue):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape=a_shape, dtype="float32"))
    w = relax.Var("w", relax.TensorType(shape=b_shape, dtype="float32"))
    bias = relax.Var("bias", relax.TensorType(shape=(b_shape[-1],), dtype="float32"))
    with bb.function("main", [x, w, bias], attrs={"num_input": 1}):
        with bb.dataflow():
            y = bb.emit(relax.op.matmul(x, w))
            if epilogue:
                y = bb.emit(relax.op.nn.gelu_tanh(relax.op.add(y, bias)))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return backend.prepare(bb.get(), TARGET)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _scheduled(mod):
    with TARGET:
        mod = cpu_schedules.apply_default_schedules(mod, TARGET)
    return {gv.name_hint for gv, f in mod.functions.items()
            if isinstance(f, tirx.PrimFunc) and f.attrs is not None and "tirx.is_scheduled" in f.attrs}


@pytest.mark.parametrize("a_shape, b_shape, epilogue", [
    ((1, 13, 37), (37, 70), True),          # partial row, column and k tiles, a fused bias + GELU
    ((2, 3, 9, 7), (2, 3, 7, 33), False),   # batched (attention's scores), 7 < one k tile of 4 x 2
    ((1, 1, 33), (33, 5), True),            # one row, fewer columns than a vector
    ((128, 64), (64, 96), True),            # whole tiles
    ((1, 6, 16), (16, 45), True),           # 45 columns: w padded to whole tiles at load, the output sliced
])
def test_matmuls_are_tiled_and_agree_with_numpy(a_shape, b_shape, epilogue):
    mod = _module(a_shape, b_shape, epilogue)
    matmuls = {gv.name_hint for gv, f in mod.functions.items()
               if isinstance(f, tirx.PrimFunc) and "matmul" in gv.name_hint}
    assert matmuls and _scheduled(mod) == matmuls

    vm = relax.VirtualMachine(backend.lower(mod, TARGET), tvm.cpu())
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape).astype(np.float32), rng.standard_normal(b_shape).astype(np.float32)
    bias = rng.standard_normal(b_shape[-1]).astype(np.float32)
    params = [tvm.runtime.tensor(b), tvm.runtime.tensor(bias)]
    if any(gv.name_hint == backend.TRANSFORM_PARAMS for gv in mod.functions):
        params = list(vm[backend.TRANSFORM_PARAMS](params))  # what the artifact runs once at load
    n, ji = b_shape[-1], cpu_schedules.tiles_for(TARGET).ji  # 32 columns on AVX-512, 16 on AVX2
    width = -(-n // ji) * ji if n > ji and n % ji else n  # zero columns up to whole tiles
    assert [tuple(p.shape) for p in params if len(p.shape) == len(b_shape)] == [(*b_shape[:-1], width)]
    got = vm["main"](tvm.runtime.tensor(a), *params).numpy()
    expected = a.astype(np.float64) @ b.astype(np.float64)
    if epilogue:
        expected = _gelu_tanh(expected + bias)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_other_reductions_are_not_matmuls():
    """max, sum and softmax are reductions but no multiply-accumulate: the matmul rule leaves them
    (dlight's CPU reduction rule, applied after it, parallelizes them), and the build still agrees."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape=(2, 16, 24), dtype="float32"))
    with bb.function("main", [x], attrs={"num_input": 1}):
        with bb.dataflow():
            y = bb.emit(relax.op.add(relax.op.max(x, axis=[2]), relax.op.sum(x, axis=[2])))
            out = bb.emit_output(relax.op.nn.softmax(y))
        bb.emit_func_output(out)
    mod = backend.prepare(bb.get(), TARGET)
    funcs = [f for f in mod.functions.values() if isinstance(f, tirx.PrimFunc)]
    assert len(funcs) >= 2
    rule = cpu_schedules.matmul_rule()
    assert [rule.apply(f, TARGET, False) for f in funcs] == [None] * len(funcs)

    vm = relax.VirtualMachine(backend.lower(mod, TARGET), tvm.cpu())
    a = np.random.default_rng(0).standard_normal((2, 16, 24)).astype(np.float32)
    a[1, 3, 5] = np.nan  # one NaN: its row's max and sum, and that softmax row, are NaN (IEEE, as PyTorch)
    got = vm["main"](tvm.runtime.tensor(a)).numpy()
    y = a.max(2) + a.sum(2, dtype=np.float64)
    expected = np.exp(y - y.max(1, keepdims=True)) / np.exp(y - y.max(1, keepdims=True)).sum(1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.isnan(got[1]).all() and not np.isnan(got[0]).any()


@pytest.mark.parametrize("target, tiles", [
    ({"kind": "llvm", "mcpu": "znver4"}, (8, 32)),
    ({"kind": "llvm", "mcpu": "haswell"}, (6, 16)),
    ({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}, (8, 8)),
])
def test_tiles_fit_the_targets_vector_registers(target, tiles):
    t = cpu_schedules.tiles_for(tvm.target.Target(target))
    assert (t.ii, t.ji) == tiles


def test_tuned_functions_keep_their_schedule():
    """A function the tuning database scheduled is marked so, and the default rule leaves it alone."""
    from tvm import s_tir
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    mod = _module((1, 13, 37), (37, 70), True)
    tasks = ms.relax_integration.extract_tasks(mod, TARGET)
    task = next(t for t in tasks if "matmul" in t.task_name)
    sch = s_tir.Schedule(task.dispatched[0])
    block = sch.get_sblock("matmul")
    sch.split(sch.get_loops(block)[-1], [None, 5])  # a schedule of its own, unlike the rule's
    database = ms.database.MemoryDatabase()
    workload = database.commit_workload(task.dispatched[0])
    database.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, [1.0], TARGET))
    with TARGET, database, tvm.transform.PassContext(opt_level=3):
        applied = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
    name = task.task_name
    tuned = next(f for gv, f in applied.functions.items() if gv.name_hint == name)
    assert tuned.attrs["tirx.is_scheduled"]
    with TARGET:
        after = cpu_schedules.apply_default_schedules(applied, TARGET)
    assert tvm_ffi.structural_equal(next(f for gv, f in after.functions.items() if gv.name_hint == name), tuned)


DENSE = """network Dense {
  input x: f32[B, 128]
  output y = x -> linear(256) -> gelu
}
"""


def test_tuning_measures_the_default_schedule_beside_its_own(tmp_path):
    """`dlc compile --tune` commits each task's default schedule as one more record, measured by the
    same runner, so a search that found nothing faster leaves the task as fast as untuned; a second
    compile on that database measures it no more. Real compiles, in processes of their own (as
    users run them: MetaSchedule's loggers do not survive pytest's captured streams)."""
    import json
    import subprocess
    import sys

    from tvm.s_tir import meta_schedule as ms

    from dlc.compiler.backends.tvm.tune import RECORDS, WORKLOADS

    spec, db = tmp_path / "dense.arch", tmp_path / "db"
    spec.write_text(DENSE)
    counts = []
    for run in ("a", "b"):
        done = subprocess.run([sys.executable, "-m", "dlc", "compile", str(spec), "--tune", "2", "--tune-db", str(db),
                               "-o", str(tmp_path / run)], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        database = ms.database.JSONDatabase(path_workload=str(db / WORKLOADS), path_tuning_record=str(db / RECORDS))
        records = database.get_all_tuning_records()
        found = 0
        for workload in {str(r.workload.mod): r.workload for r in records}.values():
            ours = cpu_schedules.default_schedule(workload.mod["main"], records[0].target)
            if ours is not None:
                mine = [r for r in records if r.workload.same_as(workload) or str(r.workload.mod) == str(workload.mod)]
                found += [str(r.trace) for r in mine].count(str(ours.trace))
        counts.append(found)
        trials = json.loads((tmp_path / run / "manifest.json").read_text())["tuning"]["trials"]
        assert (trials > 0) == (run == "a")  # the second compile found its trials done
    assert counts[0] >= 1 and counts == [counts[0]] * 2  # the matmul's (and any reduction's), once
