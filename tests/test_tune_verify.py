"""A tuned build is never wrong: every tuned schedule is checked against its untuned PrimFunc
before the build uses it (compiler/backends/tvm/verify.py).

Real TVM builds and runs. A small CNN's conv task gets two records that MetaSchedule accepts
(their traces apply to the task): a right one, and a wrong one measured faster (the conv's
padded input stored as int32 by the schedule primitive `unsafe_set_dtype`); `dlc compile --tune
0` against that database must name the task, build with the right record, match ONNX Runtime
and drop the wrong record, and the next compile is quiet. (Hand-made records: a MetaSchedule
search costs ~45 s a task here.) And the Winograd conv with partial edge tiles, which used to
give garbage (TOPI's NCHW compute read past its padded input), is tuned with one trial, passes
the check quietly and computes what PyTorch does.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort

from conftest import ROOT
from dlc.compiler.checkpoint import random_weights
from dlc.compiler.emit.onnx import emit_onnx
from dlc.compiler.pipeline import compile_file
from dlc.runtime import load

TINY_CNN = """network TinyCNN {
  input x: f32[B, 1, 12, 12]
  output logits = x -> conv2d(4, 3) -> relu -> maxpool2d(2) -> flatten -> linear(10)
}
"""
CONV_TASK = "fused_conv2d_add_relu"


def dlc(*args):
    return subprocess.run([sys.executable, "-m", "dlc", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def onnx_runtime_matches(spec, artifact) -> None:
    """The artifact's logits against ONNX Runtime's on the same weights, for two inputs."""
    graph = compile_file(spec).graphs["TinyCNN"]
    weights = dict(np.load(artifact / "weights.npz"))
    session = ort.InferenceSession(emit_onnx(graph, weights).SerializeToString())
    model = load(artifact)
    for seed in (0, 1):
        x = np.random.default_rng(seed).standard_normal((1, 1, 12, 12)).astype(np.float32)
        np.testing.assert_allclose(model(x=x)["logits"], session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


def conv_task(spec):
    """The conv task `dlc compile --tune` extracts from the spec (batch 1, this CPU), and its target."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from dlc.compiler.backends.tvm import build as backend, targets, tune

    graph = compile_file(spec).graphs["TinyCNN"]
    mod, _ = backend.import_graph(graph, random_weights(graph, 0), dict(graph.dim_examples))
    target = tvm.target.Target(targets.resolve_target("llvm").target)
    tasks = ms.relax_integration.extract_tasks(tune.per_call_part(backend.prepare(mod, target)), target)
    return next(t for t in tasks if t.task_name == CONV_TASK), target


def commit(db, task, target, schedules) -> None:
    """Commit each (schedule, seconds) as a measured record of `task`, as MetaSchedule would."""
    from tvm.s_tir import meta_schedule as ms

    from dlc.compiler.backends.tvm.tune import TuningDatabase

    with TuningDatabase(db, None) as store:
        workload = store.db.commit_workload(task.dispatched[0])
        args = ms.arg_info.ArgInfo.from_prim_func(task.dispatched[0]["main"])
        for sch, seconds in schedules:
            store.db.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, [seconds], target, args))
        store.save()


def records(db) -> int:
    return len((db / "database_tuning_record.json").read_text().splitlines())


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_a_wrong_schedule_is_named_replaced_and_dropped(tmp_path):
    import tvm

    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY_CNN)
    task, target = conv_task(spec)
    right = tvm.s_tir.Schedule(task.dispatched[0])
    right.parallel(right.get_loops(right.get_sblock("conv2d_nchw"))[1])  # over the output channels
    wrong = tvm.s_tir.Schedule(task.dispatched[0])
    wrong.unsafe_set_dtype(wrong.get_sblock("pad_temp"), 0, "int32")  # the conv reads its input as integers
    db = tmp_path / "db"
    commit(db, task, target, [(right, 1e-3), (wrong, 1e-6)])  # the wrong one measured the fastest
    assert records(db) == 2

    proc = dlc("compile", spec, "--tune", 0, "--tune-db", db, "-o", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    assert len(warnings(proc.stderr)) == 1, proc.stderr
    assert warnings(proc.stderr)[0].startswith(f"warning: task `{CONV_TASK}`: the tuned schedule (0.001 ms) gives "
                                               "outputs that differ from the untuned build's by ")
    assert "using the next-best record (1.000 ms)" in warnings(proc.stderr)[0]
    verified = json.loads((tmp_path / "a" / "manifest.json").read_text())["tuning"]["verified"]
    assert verified["checked"] == 2 and [r["task"] for r in verified["rejected"]] == [CONV_TASK]
    assert verified["rejected"][0]["difference"] > 1e-2 and verified["rejected"][0]["fallback"].startswith("the next")
    onnx_runtime_matches(spec, tmp_path / "a")
    assert records(db) == 1  # the wrong record left the database

    # what is left passed: the next compile is quiet and, dlc-checked.json remembering it, builds nothing to check
    again = dlc("compile", spec, "--tune", 0, "--tune-db", db, "-o", tmp_path / "b")
    assert again.returncode == 0, again.stderr
    assert warnings(again.stderr) == []
    verified = json.loads((tmp_path / "b" / "manifest.json").read_text())["tuning"]["verified"]
    assert verified == {**verified, "checked": 0, "rejected": []}
    onnx_runtime_matches(spec, tmp_path / "b")


def test_a_task_with_no_right_record_falls_back_to_the_default_schedule(tmp_path):
    import tvm

    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY_CNN)
    task, target = conv_task(spec)
    wrong = tvm.s_tir.Schedule(task.dispatched[0])
    wrong.unsafe_set_dtype(wrong.get_sblock("pad_temp"), 0, "int32")
    commit(tmp_path / "db", task, target, [(wrong, 1e-6)])
    proc = dlc("compile", spec, "--tune", 0, "--tune-db", tmp_path / "db", "-o", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    assert [f"task `{CONV_TASK}`" in w and "using TVM's default schedule" in w for w in warnings(proc.stderr)] == [True]
    onnx_runtime_matches(spec, tmp_path / "a")
    assert records(tmp_path / "db") == 0


def test_partial_tile_winograd_tunes_to_what_pytorch_computes(tmp_path):
    # 6x6 outputs are 1.5 tiles of F(4x4, 3x3) (as 14x14 are 3.5): TOPI's NCHW compute read the last tile row past
    # its padded input (garbage up to 1e31 once tuned); winograd.conv pads to whole tiles and crops
    import tvm
    import torch
    from tvm import relax

    from dlc.compiler.backends.tvm import build as backend, targets, tune as tvm_tune, winograd

    channels, size = 8, 6
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape=(1, channels, size, size), dtype="float32"))
    w = relax.Var("w", relax.TensorType(shape=(channels, channels, 3, 3), dtype="float32"))
    with bb.function("main", [x, w], attrs={"num_input": 1}):
        with bb.dataflow():
            packed = bb.emit_te(winograd.weight_transform, w, 4, primfunc_name_hint="winograd_weight")
            out = bb.emit_output(bb.emit(relax.op.nn.relu(bb.call_te(winograd.conv, x, packed, [1, 1, 1, 1], 4))))
        bb.emit_func_output(out)
    target = tvm.target.Target({**targets.resolve_target("llvm").target, "num-cores": 2})
    mod = backend.prepare(bb.get(), target)
    said = io.StringIO()
    report, database = tvm_tune.tune(mod, target, tmp_path / "db", 1, stream=said)
    assert report.trials == 1 and report.verified.checked == 1 and report.verified.rejected == []
    assert warnings(said.getvalue()) == []  # a right schedule passes quietly
    vm = relax.VirtualMachine(backend.lower(mod, target, database), tvm.cpu())
    rng = np.random.default_rng(0)
    xn = rng.standard_normal((1, channels, size, size)).astype(np.float32)
    wn = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32) / 8
    params = list(vm[backend.TRANSFORM_PARAMS]([tvm.runtime.tensor(wn)]))
    expected = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(xn), torch.from_numpy(wn), padding=1)).numpy()
    for _ in range(3):  # the garbage varied from call to call
        got = vm["main"](tvm.runtime.tensor(xn), *params).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
