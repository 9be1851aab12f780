"""Tuned schedules checked against the untuned ones before a tuned build uses them.

MetaSchedule ranks candidates by their time alone and never looks at what they compute, so a
schedule that TVM miscompiles is as welcome as any other, and the faster for computing nothing:
TOPI's NCHW Winograd conv with partial edge tiles read past its padded input, and tuned
schedules turned that into outputs 1e31 off (docs/tvm-tuning-notes.md, "Whole tiles only"). Before the build applies the database, each task's best record is applied
to the task's PrimFunc exactly as `MetaScheduleApplyDatabase` applies it (the trace replayed with
its postprocessing on the workload), built alone with `tvm.compile`, and run on two seeded random
input sets beside the untuned PrimFunc (the same TIR through TVM's default CPU lowering). Every
argument is compared afterwards, outputs and inputs alike, each against the largest finite value
the untuned run left in it. Per task rather than for the whole model: the task that is wrong is
named by construction, and its reference is the same computation (a Winograd task's reference is
Winograd too, so the tolerance need only cover reassociation).

Candidates run in a worker process (TVM's `PopenPoolExecutor`), as MetaSchedule's runner does: a
miscompiled kernel may write out of bounds or hang, and must not take `dlc compile` down with it.
A record that crashes its worker, fails to build or runs past TIMEOUT_S counts as wrong.

Assumes: tasks extracted from the prepared module (`tune.per_call_part`) and a database of their
records, for a target this machine runs. Guarantees: `check` returns, for each task, the best of
its CANDIDATES best records that agrees with the untuned PrimFunc within TOLERANCE (none where
no record agrees: the build then uses TVM's default schedule for it), and a `Rejection` for
every record it passed over. A record that passed is not built again while `passed` (the
database's `dlc-checked.json`) remembers it.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TOLERANCE = 1e-3  # of the largest finite value an argument holds; fp32 reassociation is ~1e-6 of it
SEEDS = (0, 1)  # two input sets: a schedule that reads memory it never wrote may agree by chance once
CANDIDATES = 3  # records tried per task, best first, before it falls back to the default schedule
TIMEOUT_S = 120.0  # one record's build and runs in the worker (an untuned 3x3 conv runs ~0.5 s)


@dataclass
class Rejection:
    """A task's record whose output differed from the untuned PrimFunc's, and what was used instead."""

    task: str
    difference: float  # largest |tuned - untuned| over the output's largest value (inf: crashed, hung, NaN)
    run_ms: float  # what the tuner measured for the rejected record
    fallback: str  # "the next-best record (0.812 ms)" or "TVM's default schedule"
    reason: str = ""  # a crash or timeout instead of a difference
    record: Any = field(default=None, repr=False)  # the TuningRecord, for the database to drop

    def message(self) -> str:
        if self.reason:
            what = self.reason
        elif np.isfinite(self.difference):
            what = f"gives outputs that differ from the untuned build's by {self.difference:.1e} of their largest value"
        else:
            what = "gives NaN or infinite outputs where the untuned build's are finite, or the other way round"
        return (f"warning: task `{self.task}`: the tuned schedule ({self.run_ms:.3f} ms) {what}; using "
                f"{self.fallback} (the record is dropped from the tuning database)")

    def as_manifest(self) -> dict[str, Any]:
        return {"task": self.task, "difference": None if not np.isfinite(self.difference) else float(
            f"{self.difference:.3g}"), "reason": self.reason or None, "run_ms": round(self.run_ms, 4),
                "fallback": self.fallback}


@dataclass
class Verdict:
    """What `check` found: the records the build may use, and what it refused."""

    database: Any  # a MemoryDatabase with one checked record per task
    checked: int = 0  # records built and run in this check (not those `passed` vouched for)
    rejected: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    def as_manifest(self) -> dict[str, Any]:
        return {"checked": self.checked, "seconds": round(self.seconds, 1), "tolerance": TOLERANCE,
                "rejected": [r.as_manifest() for r in self.rejected]}


def record_key(workload_key: str, mod) -> str:
    """The key of a tuned PrimFunc that passed: its task and its scheduled TIR's hash."""
    import tvm_ffi

    return f"{workload_key}:{tvm_ffi.structural_hash(mod) & 0xFFFFFFFFFFFF:012x}"


def scheduled(record):
    """The IRModule `MetaScheduleApplyDatabase` builds for `record` (trace replayed with its postprocessing)."""
    import tvm

    sch = tvm.s_tir.Schedule(record.workload.mod)
    record.trace.apply_to_schedule(sch, remove_postproc=False)
    return sch.mod


def check(tasks, workload_keys: list[str], db, target, passed: set[str], threads: int) -> Verdict:
    """Each task's best record that computes what its untuned PrimFunc computes; see the module doc.
    `passed` gains the key (`record_key`) of each record that passed."""
    from tvm.s_tir import meta_schedule as ms

    started = time.monotonic()
    verdict = Verdict(ms.database.MemoryDatabase())
    with _Checker(target, threads) as checker:
        for task, key in zip(tasks, workload_keys, strict=True):
            used = _first_good(task, key, _candidates(db, task), checker, passed, verdict)
            if used is not None:
                workload = verdict.database.commit_workload(task.dispatched[0])
                verdict.database.commit_tuning_record(ms.database.TuningRecord(
                    used.trace, workload, used.run_secs, used.target, used.args_info))
    verdict.seconds = time.monotonic() - started
    return verdict


def _candidates(db, task) -> list:
    """The task's CANDIDATES best measured records, best first."""
    mod = task.dispatched[0]
    if not db.has_workload(mod):
        return []
    return [r for r in db.get_top_k(db.commit_workload(mod), CANDIDATES) if r.run_secs]


def _first_good(task, workload_key: str, records: list, checker: _Checker, passed: set[str],
                verdict: Verdict):
    """The first of `records` that agrees with the untuned PrimFunc (None if none does); the
    others tried are added to `verdict.rejected`, with what is used instead."""
    rejected = []
    used = None
    for record in records:
        tuned = scheduled(record)
        key = record_key(workload_key, tuned)
        if key in passed:
            used = record
            break
        difference, reason = checker(task.dispatched[0], tuned)
        verdict.checked += 1
        if difference <= TOLERANCE:
            passed.add(key)
            used = record
            break
        rejected.append(Rejection(task.task_name, difference, 1e3 * _seconds(record), "", reason, record))
    fallback = "TVM's default schedule" if used is None else f"the next-best record ({1e3 * _seconds(used):.3f} ms)"
    for rejection in rejected:
        rejection.fallback = fallback
    verdict.rejected += rejected
    return used


class _Checker:
    """Runs `difference_in_worker` in a worker process, started at the first check (`with` shuts it down)."""

    def __init__(self, target, threads: int) -> None:
        self.target, self.threads = str(target), threads
        self.pool = None

    def __enter__(self) -> _Checker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def __call__(self, untuned, tuned) -> tuple[float, str]:
        """(difference, "") from the worker, or (inf, why) when the worker crashed or timed out."""
        import tvm
        from tvm.support.popen_pool import PopenPoolExecutor

        self.pool = self.pool or PopenPoolExecutor(max_workers=1, timeout=TIMEOUT_S)
        future = self.pool.submit(difference_in_worker, tvm.ir.save_json(untuned), tvm.ir.save_json(tuned),
                                  self.target, self.threads)
        try:
            return future.result(), ""
        except TimeoutError:
            return float("inf"), f"did not finish in {TIMEOUT_S:.0f} s"
        except ChildProcessError:
            return float("inf"), "crashed the process that ran it"
        except Exception as err:  # noqa: BLE001 - TVM cannot build or run it: not a schedule to use
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            return float("inf"), f"failed to build or run ({lines[-1] if lines else type(err).__name__})"


def _seconds(record) -> float:
    secs = [float(s) for s in record.run_secs]
    return sum(secs) / len(secs)


_REFERENCES: dict[str, list[tuple[list[np.ndarray], list[np.ndarray]]]] = {}  # in the worker, by workload


def difference_in_worker(untuned_json: str, tuned_json: str, target_json: str, threads: int) -> float:
    """In the worker process: the largest difference between the tuned and the untuned PrimFunc's
    arguments after a run on each of SEEDS' inputs, relative to each argument's largest finite
    value (inf where one is NaN or infinite and the other not). Module level, so that the worker
    can import it; the untuned outputs are kept for the next record of the same task."""
    import tvm

    os.environ["TVM_NUM_THREADS"] = str(threads)  # read when TVM's pool starts, at the first parallel run
    target = tvm.target.Target(json.loads(target_json))
    if untuned_json not in _REFERENCES:
        _REFERENCES.clear()  # one task at a time: its candidates come one after another
        untuned = tvm.ir.load_json(untuned_json)
        lib = tvm.compile(untuned, target)
        _REFERENCES[untuned_json] = [(args, _run(lib, args)) for args in (_random_args(untuned, s) for s in SEEDS)]
    lib = tvm.compile(tvm.ir.load_json(tuned_json), target)
    worst = 0.0
    for args, expected in _REFERENCES[untuned_json]:
        for want, got in zip(expected, _run(lib, args), strict=True):
            worst = max(worst, relative_difference(want, got))
    return worst


def _random_args(mod, seed: int) -> list[np.ndarray]:
    """Seeded arguments for the PrimFunc: standard normal floats, zero integers (indices stay in
    bounds), random booleans. Outputs are filled too: a schedule that leaves part of an output
    unwritten keeps the fill where the untuned run wrote its result."""
    from tvm.s_tir import meta_schedule as ms

    func = mod["main"]
    rng = np.random.default_rng(seed)
    args = []
    for info in ms.arg_info.ArgInfo.from_prim_func(func):
        shape, dtype = [int(d) for d in info.shape], np.dtype(str(info.dtype))
        if dtype.kind == "f":
            args.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind == "b":
            args.append(rng.integers(0, 2, shape).astype(dtype))
        else:
            args.append(np.zeros(shape, dtype))
    return args


def _run(lib, args: list[np.ndarray]) -> list[np.ndarray]:
    import tvm

    tensors = [tvm.runtime.tensor(a.copy()) for a in args]
    lib["main"](*tensors)
    return [t.numpy() for t in tensors]


def relative_difference(want: np.ndarray, got: np.ndarray) -> float:
    """max |got - want| over the largest finite |want| (1 where that is 0); inf where the two
    disagree on which elements are NaN or which are infinite (and of which sign)."""
    if want.dtype.kind != "f":
        return 0.0 if np.array_equal(want, got) else float("inf")
    finite = np.isfinite(want)
    if not (np.array_equal(np.isnan(want), np.isnan(got)) and np.array_equal(want[~finite & ~np.isnan(want)],
                                                                             got[~finite & ~np.isnan(want)])):
        return float("inf")
    if not finite.any():
        return 0.0
    diff = np.abs(got[finite].astype(np.float64) - want[finite])
    if not np.isfinite(diff).all():
        return float("inf")
    scale = float(np.abs(want[finite]).max()) or 1.0
    return float(diff.max()) / scale

