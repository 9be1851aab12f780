"""`dlc train` end to end: real processes, real files, small models.

Resume after a SIGKILL and after Ctrl-C ends with the same bytes as a run never stopped; two
processes under torchrun train the same weights as one; a transfer start copies what fits and
freezes what is asked; a bad input ends with a message, never a traceback; one seed, one result.
Every run trains on a small synthetic `.npz` (no scikit-learn import) with OMP_NUM_THREADS=1.
Starting a process costs ~6 s of CPU (torch, torch._dynamo via the optimizer, matplotlib), so the
runs the others are compared with run inside this process (the same `dlc.cli.main`), and the
independent processes of a test run side by side on the 2 cores.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

EPOCHS = 2
STEPS_PER_EPOCH = 40  # 400 rows: 320 train (batch 8), 40 val, 40 test
CHECKPOINT_EVERY = 5  # mid-epoch checkpoints at batches 5, 10, ... 35 of every epoch

NETWORK = """\
network N(k=4) {{
  input x: f32[B, 1, 8, 8]
  output logits = x -> flatten -> fc1: linear(32) -> relu -> {middle}fc: linear(k)
}}
"""

TRAIN = """\
train {name} {{
  data npz("{data}")
  model net = N(k={k}){start}
  config batch=8, epochs={epochs}, best="accuracy"{extra}
  optimizer {optimizer}
  schedule cosine(warmup=10)
  input image: f32[B, 1, 8, 8], label: i64[B]
  logits = image -> net
  output loss = (logits, label) -> cross_entropy(smoothing=0.05)
  output accuracy = (logits, label) -> accuracy
}}
"""


def _npz(path: Path, n: int = 400, classes: int = 10, size: int = 8, seed: int = 0) -> Path:
    """Images whose label is the argmax of a fixed projection: learnable, so the runs do something."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((n, 1, size, size)).astype(np.float32)
    projection = np.random.default_rng(99).standard_normal((size * size, classes))
    label = (image.reshape(n, -1) @ projection).argmax(1).astype(np.int64)
    np.savez(path, image=image, label=label)
    return path


def _train_text(data: Path, name: str = "T", k: int = 10, epochs: int = EPOCHS, extra: str = "",
                optimizer: str = "adam(lr=3e-3)", start: str = "") -> str:
    return TRAIN.format(name=name, data=data, k=k, epochs=epochs, extra=extra, optimizer=optimizer, start=start)


def _spec(path: Path, *trains: str, dropout: bool = True) -> Path:
    path.write_text(NETWORK.format(middle="dropout(0.3) -> " if dropout else "") + "".join(trains))
    return path


def _command(spec: Path, out: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "dlc", "train", str(spec), "-o", str(out), "--quiet", *flags]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _start(spec: Path, out: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(_command(spec, out, *flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())


def _finish(proc: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _dlc(spec: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    return _finish(_start(spec, out, *flags))


def _dlc_here(spec: Path, out: Path, *flags: str) -> None:
    """The same command inside this process, on one thread like the children: for the runs the others
    are compared with (torch is imported here already, which saves a process's start on 2 cores)."""
    from dlc.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["train", str(spec), "-o", str(out), "--quiet", *flags])
    finally:
        torch.set_num_threads(threads)
    assert code == 0


def _ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _failed(done: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The one `error: ...` line of a refused command, after checking its exit status and words."""
    assert done.returncode == code, f"exit {done.returncode}, expected {code}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr and "internal compiler error" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _state(run: Path) -> dict:
    return torch.load(run / "last.state.pt", map_location="cpu", weights_only=True)


@dataclass
class Stopped:
    """A run stopped by a signal at a mid-epoch checkpoint, as it was before it was resumed."""
    returncode: int
    stderr: str
    seconds: float  # from the signal to the exit
    state: dict  # last.state.pt as the stopped run left it
    weights: dict  # last.safetensors as the stopped run left it
    files: list[str]


def _stop_at_mid_epoch(spec: Path, signals: dict[Path, signal.Signals], timeout: float = 120) -> dict[Path, Stopped]:
    """Start a run into each folder and send it its signal as soon as last.state.pt (renamed into place
    whole, so always readable) is one taken in the middle of an epoch; the run must still be going."""
    procs = {run: _start(spec, run) for run in signals}
    seen: dict[Path, int] = {}
    sent: dict[Path, float] = {}
    ended: dict[Path, float] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(ended) < len(procs):
            assert time.monotonic() < deadline, f"runs still going after {timeout} s: {sorted(set(procs) - set(ended))}"
            for run, proc in procs.items():
                if run in ended or proc.poll() is not None:
                    assert run in sent, f"{run} ended (exit {proc.returncode}) before a mid-epoch checkpoint"
                    ended.setdefault(run, time.monotonic())
                elif run not in sent and _mid_epoch(run / "last.state.pt", seen):
                    proc.send_signal(signals[run])
                    sent[run] = time.monotonic()
            time.sleep(0.002)
    finally:  # a failed check leaves no run behind
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return {run: Stopped(proc.returncode, _finish(proc).stderr, ended[run] - sent[run], _state(run),
                         load_file(str(run / "last.safetensors")), sorted(p.name for p in run.iterdir()))
            for run, proc in procs.items()}


def _mid_epoch(path: Path, seen: dict[Path, int]) -> bool:
    stamp = path.stat().st_mtime_ns if path.exists() else None
    if stamp is None or stamp == seen.get(path):
        return False
    seen[path] = stamp
    return _state(path.parent)["batch_index"] > 0


def _assert_mid_run(state: dict, epochs: int = EPOCHS) -> None:
    """The checkpoint a stopped run left is inside an epoch, not at the end of the run."""
    assert 1 <= state["epoch"] <= epochs and 0 < state["batch_index"] < STEPS_PER_EPOCH, \
        (state["epoch"], state["batch_index"])
    assert state["global_step"] < epochs * STEPS_PER_EPOCH


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert sorted(wa) == sorted(wb)
    for key in sorted(wa):
        assert wa[key].dtype == wb[key].dtype and torch.equal(wa[key], wb[key]), f"{key}: {a} and {b} differ"


def _records(run: Path, kind: str = "epoch") -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def _assert_same_log(a: Path, b: Path, epochs: int = EPOCHS) -> None:
    """Each epoch logged once, with the same numbers (times aside) in both runs."""
    ra, rb = _records(a), _records(b)
    assert [r["epoch"] for r in rb] == list(range(1, epochs + 1))
    for x, y in zip(ra, rb, strict=True):
        for key in ("epoch", "train", "val", "lr", "best"):
            assert x[key] == y[key], (key, x, y)
    assert _records(a, "test") == _records(b, "test")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _npz(tmp_path_factory.mktemp("data") / "ten.npz")


@pytest.fixture(scope="module")
def spec(tmp_path_factory, data) -> Path:
    """2 epochs of 40 batches with dropout (so the RNG state matters) and a checkpoint every 5 batches."""
    folder = tmp_path_factory.mktemp("spec")
    return _spec(folder / "resume.arch", _train_text(data, extra=f", checkpoint_every={CHECKPOINT_EVERY}"))


@dataclass
class Runs:
    reference: Path  # never stopped, run in this process
    again: subprocess.CompletedProcess  # the same, in a process of its own
    stopped: dict[str, Stopped]  # "killed" (SIGKILL) and "interrupted" (SIGINT), before --resume
    resumed: dict[str, subprocess.CompletedProcess]  # their --resume to the end


@pytest.fixture(scope="module")
def runs(tmp_path_factory, spec) -> Runs:
    """The runs of `spec` the resume and seed tests compare, as many at once as 2 cores allow."""
    root = tmp_path_factory.mktemp("runs")
    again = _start(spec, root / "again")
    _dlc_here(spec, root / "reference")
    for name in ("last.safetensors", "best.safetensors", "last.state.pt", "metrics.jsonl", "summary.json"):
        assert (root / "reference" / name).is_file(), name
    stopped = _stop_at_mid_epoch(spec, {root / "killed": signal.SIGKILL, root / "interrupted": signal.SIGINT})
    resumed = {run.name: _start(spec, run, "--resume") for run in stopped}
    return Runs(root / "reference", _finish(again), {run.name: s for run, s in stopped.items()},
                {name: _finish(proc) for name, proc in resumed.items()})


def test_resume_after_sigkill_is_exact(runs):
    killed = runs.stopped["killed"]
    assert killed.returncode == -signal.SIGKILL
    _assert_mid_run(killed.state)  # what the resume starts from: inside an epoch, not the end
    assert "summary.json" not in killed.files
    _ok(runs.resumed["killed"])
    out = runs.reference.parent / "killed"
    _assert_same_weights(runs.reference / "last.safetensors", out / "last.safetensors")
    _assert_same_weights(runs.reference / "best.safetensors", out / "best.safetensors")
    _assert_same_log(runs.reference, out)


def test_ctrl_c_saves_and_resumes_exactly(runs):
    stopped = runs.stopped["interrupted"]
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.seconds < 10, f"Ctrl-C took {stopped.seconds:.1f} s to stop the run"
    assert "Traceback" not in stopped.stderr and "--resume" in stopped.stderr, stopped.stderr
    assert [name for name in stopped.files if name.endswith(".tmp")] == []
    _assert_mid_run(stopped.state)
    saved = stopped.state["models"]["net"]  # the weights file and the state agree
    assert sorted(stopped.weights) == sorted(saved)
    assert all(torch.equal(stopped.weights[k], saved[k]) for k in saved)
    _ok(runs.resumed["interrupted"])
    out = runs.reference.parent / "interrupted"
    _assert_same_weights(runs.reference / "last.safetensors", out / "last.safetensors")
    _assert_same_log(runs.reference, out)


def test_same_seed_same_numbers(runs):
    _ok(runs.again)
    again = runs.reference.parent / "again"
    _assert_same_weights(runs.reference / "last.safetensors", again / "last.safetensors")
    _assert_same_weights(runs.reference / "best.safetensors", again / "best.safetensors")
    _assert_same_log(runs.reference, again)


def test_two_processes_train_what_one_does(data, tmp_path):
    # No dropout, no batch norm: then the only difference is the order of the gradient sums.
    small = _npz(tmp_path / "small.npz", n=200)  # 20 batches an epoch
    spec = _spec(tmp_path / "ddp.arch", _train_text(small, optimizer="sgd(lr=0.05, momentum=0.9)"), dropout=False)
    one, two = tmp_path / "one", tmp_path / "two"
    proc = _start(spec, two, "--nproc", "2")
    _dlc_here(spec, one)
    _ok(_finish(proc))
    wa, wb = load_file(str(one / "last.safetensors")), load_file(str(two / "last.safetensors"))
    assert sorted(wa) == sorted(wb)
    for key in sorted(wa):
        assert (wa[key] - wb[key]).abs().max() < 1e-5, key
    assert [r["epoch"] for r in _records(two)] == list(range(1, EPOCHS + 1))  # process 0 alone writes the log
    assert len(_records(two, "test")) == 1
    assert json.loads((two / "summary.json").read_text())["processes"] == 2
    for x, y in zip(_records(one), _records(two), strict=True):
        assert x["train"] == pytest.approx(y["train"], rel=1e-4)
        assert x["val"] == pytest.approx(y["val"], rel=1e-4)


def test_transfer_copies_what_fits_and_freezes(data, tmp_path):
    five = _npz(tmp_path / "five.npz", n=200, classes=5, seed=1)
    pretrained, bad, junk = tmp_path / "pre", tmp_path / "bad.safetensors", tmp_path / "junk.safetensors"
    tune = f' from "{pretrained}/best.safetensors" freeze ["fc1"]'
    spec = _spec(tmp_path / "transfer.arch",
                 _train_text(data, "Pre", epochs=1),
                 _train_text(five, "Tune", k=5, epochs=1, start=tune),
                 _train_text(five, "Bad", k=5, epochs=1, start=f' from "{bad}"'),
                 _train_text(five, "Junk", k=5, epochs=1, start=f' from "{junk}"'))
    shapes = {"fc1.weight": (32, 64), "fc1.bias": (32,), "fc.weight": (5, 32), "fc.bias": (5,), "extra.weight": (3,)}
    save_file({k: torch.zeros(shape) for k, shape in shapes.items()}, str(bad))
    junk.write_bytes(b"not a safetensors file")
    refused = [_start(spec, tmp_path / name.lower(), "--train", name) for name in ("Bad", "Junk")]
    _dlc_here(spec, pretrained, "--train", "Pre")
    start = load_file(str(pretrained / "best.safetensors"))
    tuned = tmp_path / "tuned"
    done = _ok(_dlc(spec, tuned, "--train", "Tune"))
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2 and "fc.bias [5] (checkpoint [10])" in notes[0], notes
    assert "fc.weight [5, 32] (checkpoint [10, 32])" in notes[1], notes
    end = load_file(str(tuned / "last.safetensors"))
    assert torch.equal(end["fc1.weight"], start["fc1.weight"]) and torch.equal(end["fc1.bias"], start["fc1.bias"])
    assert end["fc.weight"].shape == (5, 32)
    assert not torch.equal(end["fc.weight"], start["fc.weight"][:5])  # a fresh head, not a slice of the old one
    (optimizer,) = _state(tuned)["optimizers"].values()
    assert len(optimizer["param_groups"][0]["params"]) == 2  # fc.weight and fc.bias: fc1 is frozen
    assert [r["epoch"] for r in _records(tuned)] == [1]
    bad_run, junk_run = map(_finish, refused)
    _failed(bad_run, 1, "extra.weight", "does not have", str(bad))
    _failed(junk_run, 1, "cannot read the checkpoint", str(junk))


def test_bad_inputs_end_with_a_message(data, runs, tmp_path):
    small = _npz(tmp_path / "six.npz", n=100, size=6)
    misfit = _spec(tmp_path / "misfit.arch", _train_text(small))
    spec = _spec(tmp_path / "ok.arch", _train_text(data, epochs=1))
    held = tmp_path / "held"
    shutil.copytree(runs.reference, held)
    before = {p.name: p.read_bytes() for p in held.iterdir()}
    procs = [_start(misfit, tmp_path / "misfit"), _start(spec, tmp_path / "nothing", "--resume"), _start(spec, held)]
    misfit_run, nothing, again = map(_finish, procs)
    _failed(misfit_run, 1, "`image`", "f32[B, 1, 8, 8]", "[1, 6, 6]")
    assert not (tmp_path / "misfit" / "last.state.pt").exists()
    _failed(nothing, 2, "--resume", "no run to resume")
    _failed(again, 2, "holds a run already", "--resume")
    assert {p.name: p.read_bytes() for p in held.iterdir()} == before
