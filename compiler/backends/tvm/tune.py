"""MetaSchedule tuning for the TVM backend: a persistent database, trials where the time is, a progress line.

Assumes: a Relax module already prepared for the target (`tvm.prepare`: batch norm decomposed,
legalized, fused), with static shapes. Guarantees: every fused task of the module has at least one
measured schedule in the database under `db_dir` (budget permitting: one trial per task first), and
the `trials` budget is spent, or given up where no task is still improving. Two passes:
- first, FIRST_PASS of the budget by weight x FLOPs, costliest task first, in rounds of 64;
- then round by round to the task with the most time left to win (`_gaps`: its latency against
  the best FLOP rate a task of its kind reached). A task that gained less than 1% in PATIENCE
  rounds in a row gets no more.
With `minutes`, the search also stops at that wall-clock limit: in the first pass each task has
a share of FIRST_PASS of the limit by its owed trials; its first round is cut to what that share
buys at this run's seconds per trial so far (at least MIN_ROUND), and more rounds run only
within it. The second pass and the final replay of siblings' schedules stop at the limit; a task
not reached by then keeps TVM's default schedule. Verification follows (tens of seconds).
Trials are counted in a ledger beside the database, so a second compile with the same budget
measures nothing, and a model that shares workloads with one tuned before reuses them; a run the
time limit stopped leaves trials unspent, and the next one goes on from where it stopped.
Before the build gets the records, each task's best is checked against the untuned PrimFunc on
random inputs (verify.py): a wrong one is named on `stream`, replaced by the next-best that
passes (or TVM's default schedule) and removed from the database; CHECKED remembers passes.

What TVM 0.27 needs here (measured, see docs/tvm-tuning-notes.md):
- MetaSchedule's default builder imports `tvm.s_tir.tensor_intrin` in every worker (~45 s), so
  each build times out; `build_candidate` below skips that import.
- `TuneContext` imports the same package in this process (49 s): `_light_tensor_intrin` installs
  it with only the CPU intrinsics the x86/Arm rules use.
- TVM's "gradient" scheduler hands whole rounds of 64 trials to the first tasks, so small budgets
  never reach most tasks; hence the first pass. By FLOPs alone, ResNet-18's strided convs (half
  the FLOPs of the others) got 64 trials each and ran at half the others' FLOP rate; hence the second.
- Searches of the same convolution with different epilogues (ResNet's conv + ReLU, and conv +
  residual add + ReLU) end up to 1.5x apart. Before a task's search and once at the end, the best
  schedules of its siblings are replayed on it and measured (`transfer`): they seed its search and
  often beat its own best.

The database directory (`TuningDatabase`): MetaSchedule's two JSON-lines files (workloads, then
records that point at a workload by its line), the ledger and the records found right
(CHECKED). Guarantees:
- One tuning run at a time: a run holds an exclusive `filelock` on `DIR/.dlc-lock` from reading
  the ledger to its last write, so budgets are decided on what earlier runs measured and no two
  runs append to the same files (two did: each numbered the workloads its own way, so records
  pointed at the wrong ones and every later load failed). A second run waits and says so (pid in
  `DIR/.dlc-lock-owner`). Whole-run rather than per write: the budget a run spends depends on the
  ledger it read. A compile that measures nothing holds it only to read.
- No half files: MetaSchedule appends to a working copy in the run's temporary directory; after
  each round the copy replaces the files whole (`os.replace`), workloads, then records, then
  the ledger, which so never counts trials whose records are missing. A run killed at any point
  leaves the last round's state, and the next run resumes from it.
- A corrupt file (truncated or garbage JSON, a record pointing at no workload, a workload twice)
  stops the run with `TuningDatabaseError`, naming the file and line and how to start over; TVM
  is never handed one (it segfaults on an empty line).
- The run's temporary directory, `dlc-tune-PID-START-*`, is removed at the end; one whose
  process is gone (SIGKILL) is removed by the next run, after killing the MetaSchedule workers
  that still carry its path in `DLC_TUNE_DIR`. Candidate builds go inside it too (TMPDIR).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import filelock
import psutil

from dlc.runtime.artifact import usable_cores

from .remote import RemoteError

LEDGER = "dlc-trials.json"
CHECKED = "dlc-checked.json"  # {"passed": [keys]}: records verify.py found right (a cache: damaged, it is ignored)
WORKLOADS = "database_workload.json"  # MetaSchedule's JSONDatabase file names
RECORDS = "database_tuning_record.json"
LOCK = ".dlc-lock"
LOCK_OWNER = ".dlc-lock-owner"  # {"pid": N} of the run holding LOCK, for the waiting message
WORK_DIR_VAR = "DLC_TUNE_DIR"  # set in the run's environment: its workers carry it
RECORDS_VERSION = 2  # 2: on num-cores threads, fastest of 5 repeats; 1 (one thread, one repeat) is not comparable
ROUND = 64  # candidates per search round
MIN_ROUND = 8  # under a time limit, a task's first round may shrink to its share of the time, not below this
PATIENCE = 3  # rounds in a row without a 1% gain: the task gets no more trials in this run
TRANSFER_TOP = 8  # best schedules of each sibling task replayed on a task
FIRST_PASS = 0.5  # share of the budget spread by FLOPs; the rest goes in rounds where the most time is left


@dataclass
class TaskReport:
    name: str
    weight: int
    flops: float
    trials: int  # measured in this run
    best_s: float | None  # best measured latency of one call, from the database
    converged: bool = False  # given no more trials: no 1% gain in PATIENCE rounds in a row
    transferred: int = 0  # siblings' schedules replayed and measured on it (not counted in `trials`)


@dataclass
class TuneReport:
    """What a tuning run did; `as_manifest()` is the artifact's `tuning` entry."""

    budget: int
    database: str
    tasks: list[TaskReport] = field(default_factory=list)
    seconds: float = 0.0
    minutes: float | None = None  # the wall-clock limit of the search, if any
    stopped_by_time: bool = False  # the limit ended the search with trials of the budget unspent
    verified: Any = None  # verify.Verdict: the check of the records against the untuned PrimFuncs

    @property
    def trials(self) -> int:
        return sum(t.trials for t in self.tasks)

    @property
    def estimated_ms(self) -> float | None:
        if any(t.best_s is None for t in self.tasks):
            return None
        return 1e3 * sum(t.weight * t.best_s for t in self.tasks)

    def as_manifest(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "trials": self.trials,
            "tasks": len(self.tasks),
            "tasks_reused": sum(1 for t in self.tasks if t.trials == 0),
            "tasks_converged": sum(1 for t in self.tasks if t.converged),
            "transferred": sum(t.transferred for t in self.tasks),
            "seconds": round(self.seconds, 1),
            "minutes": self.minutes,
            "stopped_by_time": self.stopped_by_time,
            "estimated_ms": None if self.estimated_ms is None else round(self.estimated_ms, 3),
            "database": self.database,
            "verified": self.verified.as_manifest() if self.verified is not None else
            {"checked": 0, "note": "not checked: the records were measured on a remote device"},
        }


def default_db_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dlc" / "tuning"


def target_key(target_json: dict[str, Any], device: str | None = None) -> str:
    """A directory name per target (and remote device key): records measured for one CPU, thread
    count or board don't apply to another."""
    text = json.dumps({**target_json, "dlc-records": RECORDS_VERSION, "device": device}, sort_keys=True)
    kind = "-".join(str(target_json.get(k)) for k in ("kind", "mcpu", "arch", "mtriple") if target_json.get(k))
    if device:
        kind += "-" + re.sub(r"[^A-Za-z0-9_.-]", "_", device)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


class TuningDatabaseError(RemoteError):
    """A tuning database that cannot be used: a corrupt file (the message names it, its line and
    how to start over) or a directory that cannot be written.

    A RemoteError only so that dlc/cli.py, which prints those as `error: ...` with exit status 1,
    reports it the same way; it has nothing to do with RPC."""


class TuningDatabase:
    """A database directory, held by one tuning run (`with TuningDatabase(path, stream) as store`):
    waits for the lock, checks and loads the files into a working copy (`store.db`, a
    JSONDatabase, and `store.ledger`), and `store.save()` publishes them. See the module doc."""

    def __init__(self, path: Path, stream: TextIO | None) -> None:
        self.path, self.stream = path, stream
        self.lock = filelock.FileLock(str(path / LOCK))
        self.work_dir = Path()
        self.ledger: dict[str, int] = {}
        self.checked: set[str] = set()
        self.db: Any = None

    def __enter__(self) -> TuningDatabase:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._acquire()
        except OSError as err:
            self.lock.release()
            raise TuningDatabaseError(f"cannot use the tuning database at {self.path}: {err.strerror or err}") from None
        try:
            remove_stale_work_dirs()  # after the wait: the run waited for may have been killed
            started = _start_time(os.getpid())
            self.work_dir = Path(tempfile.mkdtemp(prefix=f"dlc-tune-{os.getpid()}-{started}-"))
            self._remove_partial_writes()
            self.ledger = self._read_ledger()
            self.checked = self._read_checked()
            self.db = self._load()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.work_dir != Path():
            shutil.rmtree(self.work_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.path / LOCK_OWNER).unlink()
        self.lock.release()

    def environ(self) -> dict[str, str]:
        """For the run's worker processes: the mark that finds them if the run is killed, and
        a temporary directory (candidate builds) that goes with the run's."""
        return {WORK_DIR_VAR: str(self.work_dir), "TMPDIR": str(self.work_dir)}

    def save(self) -> None:
        """Publish the working copy, each file replaced whole: workloads first (records point at
        them), then records, then the ledger (so it never counts trials whose records are lost),
        then the checked records."""
        for name in (WORKLOADS, RECORDS):
            _replace_file(self.path / name, (self.work_dir / "db" / name).read_bytes())
        _write_json(self.path / LEDGER, self.ledger)
        _write_json(self.path / CHECKED, {"passed": sorted(self.checked)})

    def drop(self, records: list) -> None:
        """Remove these records from the working copy, which is written anew (`save` publishes it)."""
        import tvm
        from tvm.s_tir import meta_schedule as ms

        unwanted = {tvm.ir.save_json(r.as_json()) for r in records}
        fresh = self.work_dir / "db-next"
        fresh.mkdir()
        db = ms.database.JSONDatabase(str(fresh / WORKLOADS), str(fresh / RECORDS), allow_missing=True)
        for r in self.db.get_all_tuning_records():
            if tvm.ir.save_json(r.as_json()) not in unwanted:
                db.commit_tuning_record(ms.database.TuningRecord(r.trace, db.commit_workload(r.workload.mod),
                                                                 r.run_secs, r.target, r.args_info))
        shutil.rmtree(self.work_dir / "db")
        fresh.rename(self.work_dir / "db")
        copy = self.work_dir / "db"
        self.db = ms.database.JSONDatabase(str(copy / WORKLOADS), str(copy / RECORDS), allow_missing=True)

    def _acquire(self) -> None:
        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            if self.stream is not None:
                print(f"waiting for the tuning database at {self.path}, locked by another dlc compile "
                      f"(pid {self._owner()})", file=self.stream, flush=True)
            self.lock.acquire()
        _write_json(self.path / LOCK_OWNER, {"pid": os.getpid()})

    def _owner(self) -> str:
        try:
            return str(int(json.loads((self.path / LOCK_OWNER).read_text())["pid"]))
        except (OSError, ValueError, KeyError, TypeError):  # it has not written it yet
            return "unknown"

    def _remove_partial_writes(self) -> None:
        """`_replace_file`'s temporary files of a run killed while it wrote (only the lock holder writes)."""
        for name in (WORKLOADS, RECORDS, LEDGER, CHECKED, LOCK_OWNER):
            for partial in self.path.glob(f".{name}.*"):
                partial.unlink(missing_ok=True)

    def _load(self):
        """The database files, checked, as a JSONDatabase on a working copy in the run's directory."""
        workloads = self._lines(WORKLOADS)
        records = self._lines(RECORDS)
        self._check_workloads(workloads)
        self._check_records(records, len(workloads))
        from tvm.s_tir import meta_schedule as ms

        copy = self.work_dir / "db"
        copy.mkdir()
        for name, rows in ((WORKLOADS, workloads), (RECORDS, records)):
            (copy / name).write_bytes(b"".join(raw + b"\n" for _, raw, _ in rows))  # each line ends: appends stay lines
        try:
            return ms.database.JSONDatabase(str(copy / WORKLOADS), str(copy / RECORDS), allow_missing=True)
        except Exception as err:  # noqa: BLE001 - well-formed JSON that TVM cannot read: find the line
            raise self._unreadable(workloads, records, err) from None

    def _lines(self, name: str) -> list[tuple[int, bytes, Any]]:
        """(line number, raw line, parsed JSON) for each line of a JSON-lines file; none if absent."""
        path = self.path / name
        data = path.read_bytes() if path.exists() else b""
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        rows = []
        for number, raw in enumerate(lines, 1):
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                raise self.corrupt(name, number, "not UTF-8 text") from None
            if not text.strip():
                raise self.corrupt(name, number, "an empty line")
            rows.append((number, raw, self._json(name, text, number)))
        return rows

    def _json(self, name: str, text: str, line: int) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:  # "Unterminated string starting at", "Expecting value", ...
            message = re.sub(r" at$", "", err.msg[:1].lower() + err.msg[1:])
            raise self.corrupt(name, line + err.lineno - 1, f"not JSON: {message} at column {err.colno}") from None

    def _check_workloads(self, rows: list[tuple[int, bytes, Any]]) -> None:
        first: dict[bytes, int] = {}
        for number, raw, row in rows:
            if not (isinstance(row, list) and len(row) == 2 and all(isinstance(x, str) for x in row)):
                raise self.corrupt(WORKLOADS, number, f"expected a workload [hash, module], found {_json_kind(row)}")
            if raw in first:
                raise self.corrupt(WORKLOADS, number, f"the same workload as line {first[raw]}")
            first[raw] = number

    def _check_records(self, rows: list[tuple[int, bytes, Any]], workloads: int) -> None:
        for number, _, row in rows:
            if not (isinstance(row, list) and len(row) == 2 and type(row[0]) is int
                    and isinstance(row[1], list) and len(row[1]) == 4):
                raise self.corrupt(RECORDS, number, "expected a record [workload index, [trace, seconds, target, "
                                                    f"arguments]], found {_json_kind(row)}")
            if not 0 <= row[0] < workloads:
                raise self.corrupt(RECORDS, number, f"points at workload {row[0]}, but {WORKLOADS} has "
                                                    f"{workloads} (0 to {workloads - 1})")

    def _unreadable(self, workloads, records, err: Exception) -> TuningDatabaseError:
        """The first line that TVM cannot read, one at a time (after the whole database failed to load)."""
        from tvm.s_tir import meta_schedule as ms

        loaded = []
        for name, rows in ((WORKLOADS, workloads), (RECORDS, records)):
            for number, _, row in rows:
                try:
                    if name == WORKLOADS:
                        loaded.append(ms.database.Workload.from_json(row))
                    else:
                        ms.database.TuningRecord.from_json(row[1], loaded[row[0]])
                except Exception as line_err:  # noqa: BLE001 - what TVM says about that line
                    return self.corrupt(name, number, f"TVM cannot read it: {_first_line(line_err)}")
        return TuningDatabaseError(f"the tuning database at {self.path} is corrupt: TVM cannot load it: "
                                   f"{_first_line(err)}\n  = help: {self._start_over()}")

    def _read_checked(self) -> set[str]:
        """The keys of the records that passed verify.py's check; none where the file is absent or damaged."""
        try:
            passed = json.loads((self.path / CHECKED).read_text())["passed"]
        except (OSError, ValueError, KeyError, TypeError):
            return set()
        return {key for key in passed if isinstance(key, str)} if isinstance(passed, list) else set()

    def _read_ledger(self) -> dict[str, int]:
        path = self.path / LEDGER
        if not path.exists():
            return {}
        try:
            text = path.read_bytes().decode()
        except UnicodeDecodeError as err:
            raise self.corrupt(LEDGER, path.read_bytes()[: err.start].count(b"\n") + 1, "not UTF-8 text") from None
        if not text.strip():
            raise self.corrupt(LEDGER, 1, "an empty file")
        ledger = self._json(LEDGER, text, 1)
        if not isinstance(ledger, dict):
            raise self.corrupt(LEDGER, 1, f"expected an object of trial counts, found {_json_kind(ledger)}")
        for key, count in ledger.items():
            if type(count) is not int or count < 0:
                line = text[: max(text.find(json.dumps(key)), 0)].count("\n") + 1
                raise self.corrupt(LEDGER, line, f"`{key}` counts {json.dumps(count)} trials, expected a whole "
                                                 "number >= 0")
        return ledger

    def corrupt(self, name: str, line: int, problem: str) -> TuningDatabaseError:
        """The error for a bad line of one of the database's files, with how to get past it."""
        if name == LEDGER:
            fix = f"delete {self.path / LEDGER} to keep the schedules and count trials from zero, or " + self._start_over()
        elif name == RECORDS:
            fix = f"delete line {line} of {self.path / RECORDS} to keep the other schedules, or " + self._start_over()
        else:  # records point at workloads by line: no line of the workloads can go alone
            fix = self._start_over()
        return TuningDatabaseError(f"the tuning database at {self.path} is corrupt: {name} line {line}: {problem}\n"
                                   f"  = help: {fix}")

    def _start_over(self) -> str:
        return f"delete {self.path} to start over (its schedules are lost), or give --tune-db another directory"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _start_time(pid: int) -> int | None:
    """When process `pid` started (whole seconds), or None where there is none: with the pid it
    names a process, which a pid alone does not once the pid is reused."""
    try:
        return int(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None


def remove_stale_work_dirs() -> list[Path]:
    """Remove the temporary directories of tuning runs that are gone (killed: SIGKILL, a power
    cut), after killing their MetaSchedule workers; returns the directories removed. A directory
    is `dlc-tune-PID-START-*`: its run is gone when no process PID started at START."""
    removed = []
    for work_dir in Path(tempfile.gettempdir()).glob("dlc-tune-*-*-*"):
        m = re.fullmatch(r"dlc-tune-(\d+)-(\d+)-.*", work_dir.name)
        if m is None or not work_dir.is_dir():
            continue
        try:
            if _start_time(int(m.group(1))) == int(m.group(2)):
                continue  # a run in progress
        except psutil.Error:  # another user's process: it is not ours to judge
            continue
        _kill_workers(work_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
        removed.append(work_dir)
    return removed


def _kill_workers(work_dir: Path) -> None:
    """Kill the processes that carry `work_dir` in their environment (a dead run's builders and
    runners, which otherwise finish their candidate first: up to a minute beside the next run)."""
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(WORK_DIR_VAR) == str(work_dir):
                proc.kill()
        except psutil.Error:  # gone meanwhile, or another user's
            continue


def build_candidate(mod, target, _params):
    """MetaSchedule's `default_build` without its `import tvm.s_tir.tensor_intrin` (~45 s per worker).

    Module level so that the builder's worker processes can import it.
    """
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def measure_candidate(rt_mod, device, evaluator_config, repeated_args) -> list[float]:
    """MetaSchedule's run evaluator, keeping only the fastest of its repeats.

    On a shared machine a core is now and then slowed for seconds at a time (ResNet-18 runs in
    33-35 ms or in 45-50 ms, in phases), and TVM splits parallel loops statically, so a whole
    measurement can land in a slow phase. The minimum of several short repeats ranks candidates
    by what they do in a quiet phase instead of by when they happened to run. Module level, so
    that the runner's worker process can import it."""
    from tvm.s_tir.meta_schedule.runner.utils import run_evaluator_common

    return [min(run_evaluator_common(rt_mod, device, evaluator_config, repeated_args))]


def _light_tensor_intrin(submodules: tuple[str, ...] = ("x86", "arm_cpu")) -> None:
    """Register `tvm.s_tir.tensor_intrin` with only the CPU intrinsics, unless it is loaded already."""
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    import types

    import tvm.s_tir

    spec = importlib.util.find_spec(name)
    stub = types.ModuleType(name)
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__package__ = name
    stub.__spec__ = spec
    sys.modules[name] = stub
    tvm.s_tir.tensor_intrin = stub
    for sub in submodules:
        importlib.import_module(f"{name}.{sub}")


def allocate(costs: list[float], budget: int) -> list[int]:
    """Split `budget` trials: one per task (costliest first if short), the rest by cost, largest remainder."""
    n = len(costs)
    order = sorted(range(n), key=lambda i: -costs[i])
    if budget < n:
        alloc = [0] * n
        for i in order[: max(budget, 0)]:
            alloc[i] = 1
        return alloc
    rest = budget - n
    total = sum(costs) or 1.0
    raw = [rest * c / total for c in costs]
    extra = [math.floor(r) for r in raw]
    for i in sorted(range(n), key=lambda i: extra[i] - raw[i])[: rest - sum(extra)]:
        extra[i] += 1
    return [1 + e for e in extra]


class Progress:
    """One status line: tasks done, trials done of the budget, best latency of the current task
    (including what the database held before this run)."""

    def __init__(self, total_trials: int, total_tasks: int, stream: TextIO | None) -> None:
        self.total_trials, self.total_tasks, self.stream = total_trials, total_tasks, stream
        self.trials = 0
        self.task_index = 0
        self.task = ""
        self.best_s: float | None = None
        self.started = time.monotonic()
        self.tty = bool(stream is not None and stream.isatty())

    def start_task(self, index: int, name: str, best_s: float | None) -> None:
        self.task_index, self.task, self.best_s = index, name, best_s
        self.show()

    def measured(self, seconds: list[float | None]) -> None:
        self.trials += len(seconds)
        good = [s for s in seconds if s is not None]
        if good:
            self.best_s = min([*good, *([self.best_s] if self.best_s is not None else [])])
        self.show()

    def show(self) -> None:
        if self.stream is None:
            return
        width = 20
        filled = int(width * self.trials / max(self.total_trials, 1))
        bar = "#" * filled + "-" * (width - filled)
        best = "-" if self.best_s is None else f"{self.best_s * 1e3:.3f} ms"
        elapsed = time.monotonic() - self.started
        line = (f"tuning [{bar}] task {self.task_index}/{self.total_tasks} {self.task[:40]:40s} "
                f"trials {self.trials}/{self.total_trials}  best {best}  {elapsed / 60:.1f} min")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=self.stream, flush=True)


def _progress_callback(progress: Progress):
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
    from tvm.ir.utils import derived_object

    @derived_object
    class ProgressCallback(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
            secs = []
            for built, ran in zip(builder_results, runner_results):
                if built.error_msg is None and ran.error_msg is None and ran.run_secs:
                    secs.append(sum(float(s) for s in ran.run_secs) / len(ran.run_secs))
                else:
                    secs.append(None)
            progress.measured(secs)

    return ProgressCallback()


def per_call_part(mod):
    """`mod` without `*_transform_params` (it runs once when the artifact loads: not worth trials)."""
    import tvm
    from tvm import relax

    keep = {gv: f for gv, f in mod.functions.items() if not gv.name_hint.endswith("transform_params")}
    entries = [gv.name_hint for gv, f in keep.items() if isinstance(f, relax.Function)]
    return relax.transform.DeadCodeElimination(entries)(tvm.IRModule(keep, attrs=mod.attrs))


def _task_flops(task) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(task.dispatched[0]))
    except Exception:  # noqa: BLE001 - a task TVM can't count still gets its one trial
        return 0.0


def _workload_key(task) -> str:
    import tvm_ffi

    return f"{task.task_name}:{tvm_ffi.structural_hash(task.dispatched[0]) & 0xFFFFFFFFFFFF:012x}"


def _best_seconds(db, task) -> float | None:
    record = db.query_tuning_record(task.dispatched[0], task.target, task.task_name)
    if record is None or not record.run_secs:
        return None
    secs = [float(s) for s in record.run_secs]
    return sum(secs) / len(secs)


def tune(mod, target, db_dir: Path, trials: int, stream: TextIO | None = sys.stderr, seed: int = 0,
         remote=None, minutes: float | None = None):
    """Tune every task of `mod` for `target` into the JSON database in `db_dir`; see the module doc.
    With `remote` (remote.Remote), candidates are measured on that device over TVM RPC; with
    `minutes`, the search stops at that wall-clock limit.

    Returns the report and the database, for the build to apply. Raises `TuningDatabaseError`
    where the database in `db_dir` cannot be used."""
    _light_tensor_intrin()
    from tvm.s_tir import meta_schedule as ms

    tasks = ms.relax_integration.extract_tasks(per_call_part(mod), target)
    with TuningDatabase(Path(db_dir), stream) as store:
        report = _tune_tasks(tasks, target, store, trials, stream, seed, remote, minutes)
        if remote is not None:  # its code runs on the device only: the check would need the device too
            return report, store.db
        report.verified = _verify(tasks, target, store, stream)
    return report, report.verified.database  # in memory: the build only queries it


def _verify(tasks, target, store: TuningDatabase, stream: TextIO | None):
    """verify.check on the tasks' records; a rejected record leaves the database (it would seed
    siblings' searches and make its task look fast), and each rejection is said on `stream`."""
    from . import verify

    threads = int(target.attrs.get("num-cores", usable_cores()))
    verdict = verify.check(tasks, [_workload_key(t) for t in tasks], store.db, target, store.checked, threads)
    if verdict.rejected:
        store.drop([r.record for r in verdict.rejected])
    if verdict.checked:
        store.save()
    for rejection in verdict.rejected:
        if stream is not None:
            print(rejection.message(), file=stream, flush=True)
    return verdict


def _tune_tasks(tasks, target, store: TuningDatabase, trials: int, stream: TextIO | None, seed: int,
                remote, minutes: float | None = None) -> TuneReport:
    """The two passes of the module doc over `tasks`, into `store` (held by this run)."""
    from tvm.s_tir import meta_schedule as ms

    report = TuneReport(budget=trials, database=str(store.path), minutes=minutes)
    db, ledger = store.db, store.ledger
    flops = [_task_flops(t) for t in tasks]
    costs = [t.weight * f for t, f in zip(tasks, flops)]
    keys = [_workload_key(t) for t in tasks]
    model_key = "model:" + hashlib.sha256(" ".join(sorted(keys)).encode()).hexdigest()[:12]
    first = allocate(costs, max(min(trials, len(tasks)), math.ceil(trials * FIRST_PASS)))
    order = sorted(range(len(tasks)), key=lambda i: -costs[i])  # the shared cost model learns from big tasks first
    todo = []  # (task, trials still owed to it in the first pass)
    for i in order:
        owed = first[i] - ledger.get(keys[i], 0)
        if owed <= 0 and first[i] > 0 and _best_seconds(db, tasks[i]) is None:
            owed = 1  # every earlier trial failed
        if owed > 0:
            todo.append((i, owed))

    def unspent() -> int:  # what the second pass may still spend
        return trials - sum(ledger.get(k, 0) for k in keys) - ledger.get(model_key, 0)

    later = unspent() - sum(max(first[i] - ledger.get(keys[i], 0), 0) for i in range(len(tasks)))
    measured = {i: 0 for i in range(len(tasks))}
    converged: set[int] = set()
    transferred: dict[int, int] = {}
    started = time.monotonic()
    limit = math.inf if minutes is None else 60.0 * minutes
    deadline, first_deadline = started + limit, started + FIRST_PASS * limit
    if todo or later > 0:
        progress = Progress(sum(n for _, n in todo) + max(later, 0), len(tasks), stream)
        # candidates run with the target's cores; search, builds and the cost model use this machine's
        threads = int(target.attrs.get("num-cores", usable_cores()))
        local = usable_cores() if remote is not None else threads
        cost_model = ms.cost_model.XGBModel(num_tuning_cores=local)
        callbacks = [*ms.measure_callback.MeasureCallback.create("default"), _progress_callback(progress)]
        stale = {i: 0 for i in range(len(tasks))}
        work_dir = str(store.work_dir)
        with _quiet(store.work_dir / "tune.log"), _runner_threads(threads), _environ(**store.environ()):
            evaluator = ms.runner.EvaluatorConfig(number=3, repeat=5, min_repeat_ms=40)
            if remote is None:
                builder = ms.builder.LocalBuilder(max_workers=threads, timeout_sec=60.0, f_build=build_candidate)
                runner = ms.runner.LocalRunner(timeout_sec=30.0, f_run_evaluator=measure_candidate,
                                               evaluator_config=evaluator)
            else:
                from . import remote as rpc

                builder, runner = rpc.builder(remote, local), rpc.runner(remote, evaluator)
            transfer = _Transfer(tasks, db, builder, runner, target, work_dir, local)

            def search(i: int, chunk: int) -> int:
                """One round of `chunk` candidates for task i; returns how many were measured."""
                best, before = _best_seconds(db, tasks[i]), progress.trials
                progress.start_task(order.index(i) + 1, tasks[i].task_name, best)
                contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                    [tasks[i]], work_dir=work_dir, seed=seed + ledger.get(keys[i], 0), num_threads=local,
                    strategy=ms.search_strategy.EvolutionarySearch(population_size=256, genetic_num_iters=2),
                )
                try:
                    ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work_dir, max_trials_global=chunk,
                                  max_trials_per_task=chunk, num_trials_per_iter=chunk, builder=builder,
                                  runner=runner, database=db, cost_model=cost_model, measure_callbacks=callbacks,
                                  task_scheduler="round-robin")
                except RuntimeError as err:  # TVM's errors derive from it; seen: a Winograd task's second round
                    converged.add(i)  # ("parallel_for_dynamic error ... The block no longer exists")
                    if stream is not None:
                        print(f"warning: task `{tasks[i].task_name}`: MetaSchedule's search failed "
                              f"({_first_line(err)}); keeping its best schedule so far", file=stream)
                got = progress.trials - before
                measured[i] += got
                ledger[keys[i]] = ledger.get(keys[i], 0) + got
                new = _best_seconds(db, tasks[i])
                gained = best is None or (new is not None and new <= best * 0.99)
                stale[i] = 0 if gained else stale[i] + 1
                if got == 0 or stale[i] >= PATIENCE:  # space exhausted, or no 1% gain in PATIENCE rounds
                    converged.add(i)
                store.save()
                return got

            # First pass: each task its share of FIRST_PASS of the budget by weight x FLOPs, costliest first;
            # under a time limit, rounds within the task's share of the first pass's time (module doc).
            for k, (i, owed) in enumerate(todo):
                if k and time.monotonic() >= deadline:  # the tasks left keep TVM's default schedules
                    report.stopped_by_time = True
                    break
                transfer(i)  # siblings' best schedules first: they seed this task's search
                now = time.monotonic()
                still_owed = sum(n for _, n in todo[k:])
                task_end = now + max(first_deadline - now, 0.0) * owed / still_owed if limit < math.inf else math.inf
                chunk = min(ROUND, owed)
                if limit < math.inf and progress.trials:  # a first round that fits the task's share of the time
                    per_trial = (now - started) / progress.trials  # this run's seconds per trial, overheads included
                    chunk = max(min(MIN_ROUND, owed), min(chunk, int((task_end - now) / per_trial)))
                done = search(i, chunk)
                while done < owed and i not in converged and time.monotonic() < task_end:
                    done += search(i, min(ROUND, owed - done))
                if i in converged:  # a converged task's share counts as spent
                    ledger[keys[i]] = max(ledger[keys[i]], first[i])
            # Second pass: a round at a time to the task furthest behind the best FLOP rate of its kind.
            while unspent() > 0 and not report.stopped_by_time:
                if time.monotonic() >= deadline:
                    report.stopped_by_time = True
                    break
                gaps = _gaps(tasks, flops, [_best_seconds(db, t) for t in tasks])
                open_ = [i for i in range(len(tasks)) if i not in converged and gaps[i] > 0]
                if not open_:
                    ledger[model_key] = ledger.get(model_key, 0) + unspent()  # nothing left worth a trial
                    break
                i = max(open_, key=lambda i: gaps[i])
                search(i, min(ROUND, unspent()))
                for j in transfer.siblings[i]:
                    transfer(j)
            store.save()
            for i in sorted(i for i, n in measured.items() if n):  # siblings tuned later may have done better
                if time.monotonic() >= deadline:
                    break
                for j in [i, *transfer.siblings[i]]:
                    transfer(j)
            for i in range(len(tasks)):  # seconds each, limit or not: a search never leaves a task slower
                transfer.default(i)
            store.save()
        progress.close()
        transferred = transfer.measured
    report.seconds = time.monotonic() - started
    report.tasks = [TaskReport(t.task_name, int(t.weight), flops[i], measured[i], _best_seconds(db, t),
                               i in converged, transferred.get(i, 0)) for i, t in enumerate(tasks)]
    return report


def _gaps(tasks, flops: list[float], bests: list[float | None]) -> list[float]:
    """Seconds per model run each task might still win: its latency less what it would take at
    the best FLOP rate any task of its kind (`conv2d`, `matmul`, ...) has reached, and at least a
    tenth of its latency (the fastest of a kind can improve too). 0 for tasks not measured yet."""
    kinds = [re.sub(r"\d+$", "", anchor(t.task_name)) for t in tasks]
    rate: dict[str, float] = {}
    for kind, f, best in zip(kinds, flops, bests):
        if f and best:
            rate[kind] = max(rate.get(kind, 0.0), f / best)
    gaps = []
    for t, kind, f, best in zip(tasks, kinds, flops, bests):
        if not best:
            gaps.append(0.0)
            continue
        ideal = f / rate[kind] if f and kind in rate else best / 2
        gaps.append(t.weight * max(best - ideal, best / 10))
    return gaps


_SAMPLING = frozenset({"SamplePerfectTile", "SampleCategorical", "SampleComputeLocation", "SamplePartitionedTile"})
_EPILOGUE = frozenset({"GetSBlock", "GetConsumers", "ComputeInline", "ReverseComputeInline"})


def anchor(task_name: str) -> str:
    """The first op of a fused task: `fused_conv2d1_add1_relu1` -> `conv2d1`.

    Relax gives each distinct legalized op its own name, so tasks with the same anchor run the
    same main computation and differ only in what is fused around it."""
    m = re.match(r"fused_([^_]+)_", task_name)
    return m.group(1) if m else task_name


def _shape(trace) -> list[tuple[str, tuple[str, ...]]]:
    """The steps of a trace before postprocessing, less the epilogue's inlining (which differs
    between siblings); sampling steps keep their attributes. Traces of the same shape can
    swap their sampling decisions."""
    steps = []
    for inst in trace.insts:
        kind = inst.kind.name
        if kind == "EnterPostproc":
            break
        if kind not in _EPILOGUE:
            steps.append((kind, tuple(str(a) for a in inst.attrs) if kind in _SAMPLING else ()))
    return steps


def _sampled(trace) -> list:
    """A trace's sampling decisions, in order: what a search chose (the rest follows from the task)."""
    return [trace.decisions[inst] for inst in trace.insts if inst.kind.name in _SAMPLING]


def decisions(trace) -> str:
    """`_sampled` as a key."""
    return str(_sampled(trace))


def transfer_candidates(context, traces) -> list:
    """Schedules of `context`'s task that make the same sampling decisions as `traces`, taken from
    another task: each trace's decisions replayed on the first design space of the same shape, then
    postprocessed as MetaSchedule does. Traces that fit no design space, or whose replay fails or
    is rejected by a postprocessor, give nothing. Every schedule computes what the task computes."""
    import tvm

    spaces = [(_shape(space.trace), space.trace) for space in context.generate_design_space()]
    schedules = []
    for theirs in traces:
        shape = _shape(theirs)
        space = next((trace for space_shape, trace in spaces if space_shape == shape), None)
        if space is None:
            continue
        trace = space
        mine = [inst for inst in space.insts if inst.kind.name in _SAMPLING]
        for inst, decision in zip(mine, _sampled(theirs)):
            trace = trace.with_decision(inst, decision, True)
        sch = tvm.s_tir.Schedule(context.mod)
        try:
            trace.apply_to_schedule(sch, remove_postproc=True)
            sch.enter_postproc()
            if all(postproc.apply(sch) for postproc in context.space_generator.postprocs):
                schedules.append(sch)
        except Exception:  # noqa: BLE001 - a decision that does not fit this task: not a candidate
            continue
    return schedules


class _Transfer:
    """Replays the best schedules of a task's siblings (same `anchor`) on it, measures them and
    commits them to the database. Each sibling schedule is measured once per task and run."""

    def __init__(self, tasks, db, builder, runner, target, work_dir: str, threads: int) -> None:
        from tvm.s_tir import meta_schedule as ms

        self.tasks, self.db, self.builder, self.runner, self.target = tasks, db, builder, runner, target
        self.contexts, _ = ms.relax_integration.extracted_tasks_to_tune_contexts(
            tasks, work_dir=work_dir, num_threads=threads)
        names = [anchor(t.task_name) for t in tasks]
        self.siblings = {i: [j for j in range(len(tasks)) if j != i and names[j] == names[i]]
                         for i in range(len(tasks))}
        self.seen: dict[int, set[str]] = {}
        self.measured: dict[int, int] = {}
        self.defaulted: set[int] = set()

    def __call__(self, i: int) -> None:
        if not self.siblings[i]:
            return
        traces = []
        for j in self.siblings[i]:
            mod = self.tasks[j].dispatched[0]
            if self.db.has_workload(mod):
                traces += [r.trace for r in self.db.get_top_k(self.db.commit_workload(mod), TRANSFER_TOP)]
        workload = self.db.commit_workload(self.tasks[i].dispatched[0])
        seen = self.seen.setdefault(i, set())  # its own records, and what was replayed on it before
        seen |= {decisions(r.trace) for r in self.db.get_top_k(workload, 256)}
        fresh = []
        for trace in traces:
            if decisions(trace) not in seen:
                seen.add(decisions(trace))
                fresh.append(trace)
        schedules = transfer_candidates(self.contexts[i], fresh) if fresh else []
        if schedules:
            self.measured[i] = self.measured.get(i, 0) + self._measure(workload, schedules)

    def default(self, i: int) -> None:
        """Task i's default CPU schedule (cpu_schedules.py: what an untuned build runs) measured and
        committed as one more record, once: where the search found nothing faster in its budget, the
        task then runs as fast as untuned, not slower. Not a seed of the search: it runs last."""
        if self.target.kind.name != "llvm" or i in self.defaulted:
            return
        self.defaulted.add(i)
        from .cpu_schedules import default_schedule

        mod = self.tasks[i].dispatched[0]
        sch = default_schedule(mod["main"], self.target)
        if sch is None:
            return
        workload = self.db.commit_workload(mod)
        if any(str(r.trace) == str(sch.trace) for r in self.db.get_top_k(workload, 256)):
            return  # measured by an earlier run
        self._measure(workload, [sch])

    def _measure(self, workload, schedules) -> int:
        """Build and run `schedules`, commit a record of each that ran; returns how many were built."""
        from tvm.s_tir import meta_schedule as ms

        built = self.builder.build([ms.builder.BuilderInput(sch.mod, self.target) for sch in schedules])
        ok = [(sch, result.artifact_path, ms.arg_info.ArgInfo.from_entry_func(sch.mod))
              for sch, result in zip(schedules, built) if result.error_msg is None]
        futures = self.runner.run([ms.runner.RunnerInput(path, "cpu", args) for _, path, args in ok])
        for (sch, path, args), future in zip(ok, futures):
            ran = future.result()
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
            if ran.error_msg is None and ran.run_secs:
                self.db.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, ran.run_secs,
                                                                      self.target, args))
        return len(ok)


@contextlib.contextmanager
def _quiet(log: Path):
    """MetaSchedule logs every round to stdout; send it to a file (our progress line is on stderr)."""
    with open(log, "w") as sink, contextlib.redirect_stdout(sink):
        yield


@contextlib.contextmanager
def _environ(**values: str):
    """These environment variables for the block (worker processes started in it inherit them)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _runner_threads(threads: int):
    """Measure candidates with the thread count the artifact runs with.

    The runner's worker processes inherit this environment. Without it TVM's pool starts
    hardware_concurrency / 2 threads (one, on two cores), and the search optimised single-threaded
    latency: ResNet-18's tuned 512-channel conv then ran slower on two threads than on one."""
    return _environ(TVM_NUM_THREADS=str(threads))


def _replace_file(path: Path, data: bytes) -> None:
    """Write `path` whole: a reader, or a run killed meanwhile, finds the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def _write_json(path: Path, data: dict) -> None:
    _replace_file(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def describe(report: TuneReport, stream: TextIO, top: int = 8) -> None:
    """A short table of the costliest tasks, for the end of `dlc compile --tune`."""
    est = report.estimated_ms
    converged = sum(t.converged for t in report.tasks)
    print(f"tuned {len(report.tasks)} tasks with {report.trials} new trials in {report.seconds / 60:.1f} min"
          f"{f' ({converged} stopped improving)' if converged else ''}"
          f" (database {report.database}); sum of task latencies {'-' if est is None else f'{est:.2f} ms'}",
          file=stream)
    if report.stopped_by_time:
        print(f"  the {report.minutes:g}-minute limit (--tune-minutes) stopped the search with trials of the "
              f"{report.budget} budget left: compile again to go on, or give --tune-minutes 0", file=stream)
    for t in sorted(report.tasks, key=lambda t: -(t.weight * (t.best_s or 0)))[:top]:
        best = "-" if t.best_s is None else f"{t.best_s * 1e3:8.3f} ms"
        borrowed = f", {t.transferred} from siblings" if t.transferred else ""
        print(f"  {t.name[:48]:48s} x{t.weight:<2d} {t.flops / 1e6:9.1f} MFLOP  {best}  +{t.trials} trials{borrowed}",
              file=stream)
