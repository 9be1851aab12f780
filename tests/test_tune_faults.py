"""The tuning database under hostile conditions: concurrent runs, corrupt files, a killed run.

Real `dlc compile --tune` processes on a two-task network (flatten, linear) with one or two
trials, into databases under tmp_path; each subprocess gets a TMPDIR there, so that the temporary
directories a run leaves (or removes) can be seen. Eight compiles, two of them tuning one round:
2 min of CPU; 1.6 min on this machine's two cores, 4.3 min while others used them (load 4-7).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from dlc.compiler.backends.tvm.tune import (LEDGER, RECORDS, WORK_DIR_VAR, WORKLOADS, TuningDatabase,
                                            TuningDatabaseError, remove_stale_work_dirs)

TINY = """network Tiny {
  input x: f32[B, 1, 4, 4]
  output logits = x -> flatten -> linear(3)
}
"""
TRIALS = 1  # the costlier task gets it; the race and the corrupt copies need no more


def compile_cmd(tmp: Path, db: Path, out: str, trials: int) -> list[str]:
    spec = tmp / "tiny.arch"
    spec.write_text(TINY)
    return [sys.executable, "-m", "dlc", "compile", str(spec), "--tune", str(trials), "--tune-db", str(db),
            "-o", str(tmp / out)]


def environ(tmp: Path) -> dict[str, str]:
    (tmp / "tmp").mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp / "tmp"), "OMP_NUM_THREADS": "1"}


def start(tmp: Path, db: Path, out: str, trials: int = TRIALS) -> subprocess.Popen:
    return subprocess.Popen(compile_cmd(tmp, db, out, trials), cwd=tmp, env=environ(tmp), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(tmp: Path, db: Path, out: str, trials: int = TRIALS) -> subprocess.CompletedProcess:
    return subprocess.run(compile_cmd(tmp, db, out, trials), cwd=tmp, env=environ(tmp), text=True, capture_output=True)


def trials_of(tmp: Path, out: str) -> int:
    return json.loads((tmp / out / "manifest.json").read_text())["tuning"]["trials"]


@pytest.fixture(scope="module")
def raced(tmp_path_factory):
    """Two compiles started at once on one fresh database: (their results, the directory)."""
    tmp = tmp_path_factory.mktemp("race")
    db = tmp / "db"
    procs = [start(tmp, db, out) for out in ("a", "b")]
    results = [(*proc.communicate(), proc.returncode) for proc in procs]
    return tmp, db, results


def test_concurrent_runs_share_one_database(raced):
    tmp, db, results = raced
    for _, stderr, rc in results:
        assert rc == 0, stderr
    # one run held the database for all its tuning; the other waited, then measured nothing new
    waited = [stderr for _, stderr, _ in results if "waiting for the tuning database at" in stderr]
    assert len(waited) == 1 and "locked by another dlc compile (pid " in waited[0]
    trials = sorted(trials_of(tmp, out) for out in ("a", "b"))
    assert trials == [0, TRIALS]
    assert sum(json.loads((db / LEDGER).read_text()).values()) == TRIALS  # both runs' trials, counted once
    workloads = (db / WORKLOADS).read_text().splitlines()
    assert len(workloads) == len(set(workloads)) == TRIALS  # one per task tuned, none twice
    third = run(tmp, db, "c")
    assert third.returncode == 0, third.stderr
    assert trials_of(tmp, "c") == 0 and "waiting" not in third.stderr
    assert not list((tmp / "tmp").glob("dlc-tune-*"))  # every run removed its temporary directory


def corrupt_copy(raced, tmp_path: Path, name: str, damage) -> Path:
    db = tmp_path / "db"
    shutil.copytree(raced[1], db)
    path = db / name
    path.write_bytes(damage(path.read_bytes()))
    return db


def truncated(data: bytes) -> bytes:
    """Cut in the middle: a run killed while TVM appended to the file (before this was fixed)."""
    return data[: len(data) // 2]


CASES = [  # the fixture's files have 1, 2 and 3 lines (records: the search's best and the default schedule's)
    pytest.param(WORKLOADS, truncated, "database_workload.json line 1: not JSON: unterminated string starting at column ",
                 id="workloads-truncated"),
    pytest.param(WORKLOADS, lambda d: d + b"\x00\x17PK not json\n",
                 "database_workload.json line 2: not JSON: expecting value at column 1", id="workloads-garbage"),
    pytest.param(WORKLOADS, lambda d: d + d, "database_workload.json line 2: the same workload as line 1",
                 id="workloads-twice"),  # what two runs appending at once left
    pytest.param(WORKLOADS, lambda d: d[:40] + d[60:], "database_workload.json line 1: TVM cannot read it: ",
                 id="workloads-bad-module"),  # JSON, but the module's base64 is not
    pytest.param(RECORDS, truncated, "database_tuning_record.json line 2: not JSON: ", id="records-truncated"),
    pytest.param(RECORDS, lambda d: d + b"\n", "database_tuning_record.json line 3: an empty line",
                 id="records-empty-line"),  # TVM's own loader segfaults on it
    pytest.param(RECORDS, lambda d: re.sub(rb"^\[\d+,", b"[7,", d),
                 "database_tuning_record.json line 1: points at workload 7, but database_workload.json has 1",
                 id="records-no-such-workload"),
    pytest.param(RECORDS, lambda d: b"\xff" + d, "database_tuning_record.json line 1: not UTF-8 text", id="records-binary"),
    pytest.param(RECORDS, lambda d: d.replace(b"[[[[", b"[[[[7,", 1),
                 "database_tuning_record.json line 1: TVM cannot read it: ", id="records-bad-trace"),
    pytest.param(LEDGER, truncated, "dlc-trials.json line 2: not JSON: ", id="ledger-truncated"),
    pytest.param(LEDGER, lambda d: b"", "dlc-trials.json line 1: an empty file", id="ledger-empty"),
    pytest.param(LEDGER, lambda d: b"[1, 2]\n",
                 "dlc-trials.json line 1: expected an object of trial counts, found a list of 2", id="ledger-list"),
    pytest.param(LEDGER, lambda d: d.replace(b": 1", b': "1"', 1), 'counts "1" trials, expected a whole number >= 0',
                 id="ledger-string-count"),
]


@pytest.mark.parametrize("name, damage, problem", CASES)
def test_a_corrupt_file_is_named_with_its_line(raced, tmp_path, monkeypatch, name, damage, problem):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the run's directory goes (and stale ones are looked for)
    db = corrupt_copy(raced, tmp_path, name, damage)
    before = {p.name: p.read_bytes() for p in db.iterdir() if p.name != ".dlc-lock"}
    with pytest.raises(TuningDatabaseError) as err:
        with TuningDatabase(db, None):
            pass
    assert str(err.value).startswith(f"the tuning database at {db} is corrupt: ")
    assert problem in str(err.value), str(err.value)
    assert f"delete {db} to start over" in str(err.value) and "--tune-db" in str(err.value)
    assert {p.name: p.read_bytes() for p in db.iterdir() if p.name != ".dlc-lock"} == before  # reported, not touched
    assert not list(tmp_path.glob("dlc-tune-*"))


def test_a_corrupt_database_stops_the_compile_with_a_message(raced, tmp_path):
    # one damaged file of each kind, three compiles at once (each a TVM import's worth of time)
    procs = []
    for name in (WORKLOADS, RECORDS, LEDGER):
        case = tmp_path / name.split(".")[0]
        case.mkdir()
        db = corrupt_copy(raced, case, name, truncated)
        procs.append((name, db, start(case, db, "out")))
    for name, db, proc in procs:
        _, stderr = proc.communicate()
        assert proc.returncode == 1, stderr
        assert stderr.startswith(f"error: the tuning database at {db} is corrupt: {name} line "), stderr
        assert "= help: " in stderr and "Traceback" not in stderr
        assert not (db.parent / "out").exists()


def test_a_database_that_is_a_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "db").write_text("not a directory\n")
    with pytest.raises(TuningDatabaseError, match="cannot use the tuning database at .*db: File exists"):
        with TuningDatabase(tmp_path / "db", None):
            pass


def workers_of(work_dir: Path) -> list[psutil.Process]:
    """The processes that carry a tuning run's directory in their environment: its TVM workers."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(WORK_DIR_VAR) == str(work_dir):
                found.append(proc)
        except psutil.Error:  # gone meanwhile
            continue
    return found


def test_only_the_directories_of_dead_runs_are_removed_and_their_workers_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"dlc-tune-{int(gone.stdout)}-1-abc"  # that pid has exited (and started long after 1970)
    me = psutil.Process()
    live = tmp_path / f"dlc-tune-{me.pid}-{int(me.create_time())}-def"
    other = tmp_path / "dlc-tune-notes"  # not a run's directory
    for d in (dead, live, other):
        d.mkdir()
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                              env={**os.environ, WORK_DIR_VAR: str(dead)})
    try:
        assert remove_stale_work_dirs() == [dead]
        assert orphan.wait(timeout=10) == -signal.SIGKILL
    finally:
        orphan.kill()
    assert not dead.exists() and live.is_dir() and other.is_dir()


def test_a_killed_run_is_cleaned_up_and_resumed(raced, tmp_path):
    # the raced database has the costlier task's trial; a budget of 2 owes one to the other task
    db = tmp_path / "db"
    shutil.copytree(raced[1], db)
    proc = start(tmp_path, db, "killed", trials=2)
    deadline, workers = time.monotonic() + 240, []
    while not workers:  # kill it while MetaSchedule's builders and runners are at work
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.2)
        work_dirs = list((tmp_path / "tmp").glob(f"dlc-tune-{proc.pid}-*"))
        workers = workers_of(work_dirs[0]) if work_dirs else []
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert work_dirs[0].is_dir()  # left behind
    saved = sum(json.loads((db / LEDGER).read_text()).values())

    again = run(tmp_path, db, "resumed", trials=2)
    assert again.returncode == 0, again.stderr
    assert not work_dirs[0].exists() and not workers_of(work_dirs[0])
    assert saved + trials_of(tmp_path, "resumed") == 2  # nothing measured twice, nothing lost
    assert sum(json.loads((db / LEDGER).read_text()).values()) == 2
    workloads = (db / WORKLOADS).read_text().splitlines()
    assert len(workloads) == len(set(workloads)) == 2  # the raced run's task, kept, and the other
    assert not [p for p in db.iterdir() if p.name.startswith(".") and p.name != ".dlc-lock"]  # no partial writes
