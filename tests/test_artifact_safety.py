"""Artifacts are checked at load, and written recoverably (issue 20).

Every corruption of a real artifact (the digits MLP, built once for this machine) is refused by
`dlc.runtime.load` with an ArtifactError that names the file and what is wrong, and by `dlc run`
(a real subprocess) with that one `error:` line, exit status 1, no traceback, nothing written.
`dlc run` writes outputs into an existing directory, refuses an output in a missing one, and reads
an .npz's arrays as named inputs. A `dlc compile -o OUT` SIGKILLed between the two renames of its
swap (held there by the test-only `DLC_TEST_ARTIFACT_PAUSE` hook) leaves a state the next write
repairs, and a live concurrent writer's temporary directory is never taken for a dead one's.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SPEC
from dlc.compiler.backends.tvm.artifact import recover_interrupted_write, write_artifact
from dlc.compiler.backends.tvm.build import build
from dlc.compiler.backends.tvm.targets import resolve_target
from dlc.compiler.pipeline import compile_file
from dlc.runtime import ArtifactError, load
from dlc.runtime.__main__ import output_paths
from dlc.runtime.artifact import previous_artifact, sha256_of

DIGITS = SPEC / "digits_mlp.arch"


def _dlc(*args: str, cwd: Path, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from dlc.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, cwd=cwd, env=env, **kw)


def _build(dims=None):
    graph = compile_file(DIGITS).graphs["DigitsMLP"]
    rng = np.random.default_rng(0)
    weights = {w.name: rng.standard_normal(w.shape).astype(np.float32) for w in graph.weights}
    return build(graph, weights, resolve_target("llvm"), "0" * 64, "spec/digits_mlp.arch", dims=dims)


@pytest.fixture(scope="module")
def built():
    """The digits MLP built in this process (batch left symbolic), to write artifacts from."""
    return _build()


@pytest.fixture(scope="module")
def artifacts(built, tmp_path_factory) -> Path:
    """`base`: a good artifact; `static`: the same network built for batch 2 (another model.so);
    `x.npy`: an input."""
    root = tmp_path_factory.mktemp("artifacts")
    write_artifact(built, resolve_target("llvm"), root / "base")
    write_artifact(_build({"B": 2}), resolve_target("llvm"), root / "static")
    np.save(root / "x.npy", np.random.default_rng(1).random((2, 1, 8, 8), dtype=np.float32))
    return root


# ---- corruptions ----------------------------------------------------------------------------------

def _manifest(art: Path, edit) -> None:
    manifest = json.loads((art / "manifest.json").read_text())
    edit(manifest)
    (art / "manifest.json").write_text(json.dumps(manifest))


def _weights(art: Path, edit, rehash: bool = True) -> None:
    """Rewrite weights.npz; with `rehash`, the manifest's sha256 too, so only the structural check is left."""
    with np.load(art / "weights.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    edit(arrays)
    np.savez(art / "weights.npz", **arrays)
    if rehash:
        _manifest(art, lambda m: m["sha256"].update({"weights.npz": sha256_of(art / "weights.npz")}))


def _truncate(file: Path, keep: float) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


def _randomize(file: Path) -> None:
    file.write_bytes(np.random.default_rng(2).bytes(file.stat().st_size))


def _dir_for_file(file: Path) -> None:
    file.unlink()
    file.mkdir()


def _symlink_out(art: Path, other: Path) -> None:
    (art / "model.so").unlink()
    (art / "model.so").symlink_to(other / "model.so")


SHA_CHANGED = "does not match the manifest's sha256: the file was changed after `dlc compile` wrote it; recompile"
MALFORMED = "manifest.json` is malformed: "
# (id, corrupt(artifact, the `artifacts` root), the file the message names, what it says)
CORRUPTIONS = [
    ("model.so missing", lambda a, r: (a / "model.so").unlink(), "model.so", "is missing (the manifest's `library` names it)"),
    ("model.so empty", lambda a, r: (a / "model.so").write_bytes(b""), "model.so", "is empty"),
    ("model.so random", lambda a, r: _randomize(a / "model.so"), "model.so", SHA_CHANGED),
    ("model.so truncated", lambda a, r: _truncate(a / "model.so", 0.5), "model.so", SHA_CHANGED),
    ("model.so swapped", lambda a, r: shutil.copy(r / "static" / "model.so", a / "model.so"), "model.so", SHA_CHANGED),
    ("model.so a directory", lambda a, r: _dir_for_file(a / "model.so"), "model.so", "is not a file"),
    ("model.so a symlink out", lambda a, r: _symlink_out(a, r / "static"), "model.so", "leads out of"),
    ("weights missing", lambda a, r: (a / "weights.npz").unlink(), "weights.npz", "is missing (the manifest's `weights` names it)"),
    ("weights truncated", lambda a, r: _truncate(a / "weights.npz", 0.5), "weights.npz", "is not a readable .npz archive"),
    ("weights random", lambda a, r: _randomize(a / "weights.npz"), "weights.npz", "is not an .npz archive"),
    ("weights edited", lambda a, r: _weights(a, lambda w: w.update({"hidden.bias": w["hidden.bias"] + 1}), rehash=False),
     "weights.npz", SHA_CHANGED),
    ("weights wrong shape", lambda a, r: _weights(a, lambda w: w.update({"hidden.weight": w["hidden.weight"].T})),
     "weights.npz", "holds `hidden.weight` as float32[64, 256], the manifest says float32[256, 64]"),
    ("weights wrong dtype", lambda a, r: _weights(a, lambda w: w.update({"hidden.bias": w["hidden.bias"].astype(np.float64)})),
     "weights.npz", "holds `hidden.bias` as float64[256], the manifest says float32[256]"),
    ("weights lack one", lambda a, r: _weights(a, lambda w: w.pop("classifier.bias")),
     "weights.npz", "has no array `classifier.bias` (the manifest's `params` names it)"),
    ("weights pickled", lambda a, r: _weights(a, lambda w: w.update({"hidden.bias": np.array([{}], dtype=object)})),
     "weights.npz", "allow_pickle=False"),
    ("manifest a list", lambda a, r: (a / "manifest.json").write_text("[1, 2]"), "manifest.json",
     MALFORMED + "it must hold a JSON object, got a list"),
    ("manifest not json", lambda a, r: (a / "manifest.json").write_text("{"), "manifest.json", "is not valid JSON"),
    ("no target", lambda a, r: _manifest(a, lambda m: m.pop("target")), "manifest.json", MALFORMED + "`target` is missing"),
    ("no outputs", lambda a, r: _manifest(a, lambda m: m.pop("outputs")), "manifest.json", MALFORMED + "`outputs` is missing"),
    ("num-cores abc", lambda a, r: _manifest(a, lambda m: m["target"]["tvm"].update({"num-cores": "abc"})),
     "manifest.json", MALFORMED + '`target.tvm.num-cores` must be an integer, got a string "abc"'),
    ("transform_params unknown", lambda a, r: _manifest(a, lambda m: m.update(transform_params="nope")),
     "model.so", "has no function `nope` (the manifest's `transform_params` names it)"),
    ("transform_params a number", lambda a, r: _manifest(a, lambda m: m.update(transform_params=5)),
     "manifest.json", MALFORMED + "`transform_params` must be a string, got an integer 5"),
    ("params short", lambda a, r: _manifest(a, lambda m: m["params"].pop()), "manifest.json",
     MALFORMED + "`params` and `param_specs` must name the same weights in the same order (only in `params`: -; "
                 "only in `param_specs`: classifier.bias)"),
    ("library absolute", lambda a, r: _manifest(a, lambda m: m.update(library=str(r / "static" / "model.so"))),
     "manifest.json", MALFORMED + "`library` must name a file inside the artifact directory, got `/"),
    ("library outside", lambda a, r: _manifest(a, lambda m: m.update(library="../static/model.so")),
     "manifest.json", MALFORMED + "`library` must name a file inside the artifact directory, got `../static/model.so`"),
    ("no sha256", lambda a, r: _manifest(a, lambda m: m.pop("sha256")), "manifest.json",
     "records no sha256 of the files beside it: it was written by a dlc older than those checks, so they cannot be "
     "verified; recompile it with `dlc compile`"),
    ("sha256 malformed", lambda a, r: _manifest(a, lambda m: m["sha256"].update({"model.so": "beef"})),
     "manifest.json", MALFORMED + '`sha256.model.so` must be 64 lowercase hex digits, got "beef"'),
    ("input shape a float", lambda a, r: _manifest(a, lambda m: m["inputs"][0].update(shape=[1.5])),
     "manifest.json", MALFORMED + "`inputs[0].shape[0]` must be an integer, got a number 1.5"),
]


@pytest.fixture
def corrupt(artifacts, tmp_path, request):
    """A copy of the good artifact, corrupted as the test's case says; the case's message parts."""
    _, damage, file, what = request.param
    art = tmp_path / "art"
    shutil.copytree(artifacts / "base", art)
    damage(art, artifacts)
    return art, f"`{art / file}`", what


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS], indirect=True)
def test_a_corrupt_artifact_is_refused_by_load_naming_the_file(corrupt):
    art, file, what = corrupt
    with pytest.raises(ArtifactError) as err:
        load(art)
    assert file in str(err.value) and what in str(err.value), str(err.value)


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS], indirect=True)
def test_a_corrupt_artifact_is_refused_by_dlc_run_in_one_line(corrupt, artifacts, tmp_path):
    art, file, what = corrupt
    proc = _dlc("run", str(art), "--input", str(artifacts / "x.npy"), "--output", str(tmp_path / "y.npy"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and file in lines[0] and what in lines[0], proc.stderr
    assert not (tmp_path / "y.npy").exists()


def test_the_good_artifact_records_what_load_checks_and_runs(artifacts, tmp_path):
    manifest = json.loads((artifacts / "base" / "manifest.json").read_text())
    assert manifest["sha256"] == {f: sha256_of(artifacts / "base" / f) for f in ("model.so", "weights.npz")}
    with np.load(artifacts / "base" / "weights.npz") as archive:
        assert manifest["param_specs"] == [{"name": n, "dtype": str(archive[n].dtype), "shape": list(archive[n].shape)}
                                           for n in manifest["params"]]
    x = np.load(artifacts / "x.npy")
    proc = _dlc("run", str(artifacts / "base"), "--input", str(artifacts / "x.npy"), "-o", str(tmp_path / "y.npy"),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), load(artifacts / "base")(x)["logits"])


# ---- dlc run's inputs and outputs -------------------------------------------------------------------

def test_dlc_run_writes_into_an_existing_output_directory(artifacts, tmp_path):
    (tmp_path / "out").mkdir()
    proc = _dlc("run", str(artifacts / "base"), "--input", str(artifacts / "x.npy"), "--output", str(tmp_path / "out"),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no `out.npy` beside it
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["logits.npy"]
    want = load(artifacts / "base")(np.load(artifacts / "x.npy"))["logits"]
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "logits.npy"), want)


def test_dlc_run_refuses_an_output_in_a_missing_directory_and_writes_nothing(artifacts, tmp_path):
    target = tmp_path / "no" / "such" / "y.npy"
    proc = _dlc("run", str(artifacts / "base"), "--input", str(artifacts / "x.npy"), "--output", str(target), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == f"error: cannot write `{target}`: the directory `{target.parent}` does not exist\n"
    assert list(tmp_path.iterdir()) == []


def test_several_outputs_are_not_written_into_a_file(tmp_path):
    (tmp_path / "y.npy").write_bytes(b"kept")
    with pytest.raises(ArtifactError, match=r"into `.*y\.npy`: it is a file, and a model with several outputs"):
        output_paths(tmp_path / "y.npy", ["mean", "logvar"])
    assert output_paths(tmp_path, ["mean", "logvar"]) == {"mean": tmp_path / "mean.npy", "logvar": tmp_path / "logvar.npy"}


def test_dlc_run_reads_an_npz_as_named_inputs(artifacts, tmp_path):
    x = np.load(artifacts / "x.npy")
    np.savez(tmp_path / "feeds.npz", x=x)
    proc = _dlc("run", str(artifacts / "base"), "--input", str(tmp_path / "feeds.npz"), "-o", str(tmp_path / "y.npy"),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), load(artifacts / "base")(x)["logits"])


@pytest.mark.parametrize("arrays, args, message", [
    ({"y": 1}, ["{npz}"], "error: inputs are x; missing: x; unexpected: y"),
    ({"x": 1}, ["x={npz}"], "error: `{npz}` is an .npz, its arrays already named: give it as `--input {npz}`"),
    ({"x": 1}, ["{npz}", "x={x}"], "error: input `x` is given twice (`{x}` holds it again)"),
])
def test_dlc_run_refuses_npz_inputs_it_cannot_use(artifacts, tmp_path, arrays, args, message):
    fill = {"npz": tmp_path / "feeds.npz", "x": artifacts / "x.npy"}
    np.savez(fill["npz"], **{k: np.load(artifacts / "x.npy") for k in arrays})
    inputs = [a for arg in args for a in ("--input", arg.format(**fill))]
    proc = _dlc("run", str(artifacts / "base"), *inputs, "-o", str(tmp_path / "y.npy"), cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (1, message.format(**fill) + "\n")
    assert not (tmp_path / "y.npy").exists()


# ---- an interrupted write, and the next one ------------------------------------------------------

def _compile_paused(out: Path, phase: str, cwd: Path, *flags: str) -> subprocess.Popen:
    """`dlc compile` of the digits MLP, which sleeps at `phase` of its write (the test-only hook)."""
    env = {**os.environ, "DLC_TEST_ARTIFACT_PAUSE": phase}
    return subprocess.Popen([sys.executable, "-c", "import sys; from dlc.cli import main; sys.exit(main())",
                             "compile", str(DIGITS), "-o", str(out), *flags], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, condition, what: str) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        assert proc.poll() is None, f"the compile ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no {what} after 180 s"
        time.sleep(0.05)


def _temporaries(out: Path) -> list[Path]:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_a_compile_killed_between_the_renames_is_rolled_back_by_the_next_write(built, tmp_path):
    out = tmp_path / "model"
    write_artifact(built, resolve_target("llvm"), out)
    before = sha256_of(out / "weights.npz")
    proc = _compile_paused(out, "swapping", tmp_path)
    old = previous_artifact(out)
    _wait_for(proc, lambda: old.exists() and not out.exists(), "swap")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert not out.exists() and (old / "manifest.json").is_file()
    left = [p for p in _temporaries(out) if p != old]
    assert len(left) == 1 and (left[0] / "manifest.json").is_file()  # the new artifact, never swapped in
    with pytest.raises(ArtifactError, match=r"holds the artifact that was there before a `dlc compile -o .*` was "
                                            r"interrupted: the next `dlc compile -o .*` restores it first"):
        load(out)

    recover_interrupted_write(out, time.time())  # what the next write does first
    assert _temporaries(out) == [] and sha256_of(out / "weights.npz") == before
    load(out)
    write_artifact(built, resolve_target("llvm"), out)
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and load(out).manifest["params"]


def test_a_compile_killed_after_the_renames_is_finished_by_the_next_write(built, tmp_path):
    out = tmp_path / "model"
    write_artifact(built, resolve_target("llvm"), out)
    before = sha256_of(out / "weights.npz")
    proc = _compile_paused(out, "swapped", tmp_path, "--seed", "1")
    old = previous_artifact(out)
    _wait_for(proc, lambda: old.exists() and out.exists(), "swap")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    new = sha256_of(out / "weights.npz")
    assert new != before and sha256_of(old / "weights.npz") == before
    load(out)  # the new artifact is in place and whole
    recover_interrupted_write(out, time.time())  # what the next write does first: keep it, drop the old one
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and sha256_of(out / "weights.npz") == new
    write_artifact(built, resolve_target("llvm"), out)
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and sha256_of(out / "weights.npz") == before


def test_a_live_writers_temporary_directory_survives_another_write_a_dead_ones_does_not(built, tmp_path):
    out = tmp_path / "model"
    proc = _compile_paused(out, "written", tmp_path)
    try:
        _wait_for(proc, lambda: any((p / "manifest.json").is_file() for p in _temporaries(out)), "temporary artifact")
        live = _temporaries(out)
        time.sleep(0.05)  # this run starts after the live writer's last change
        write_artifact(built, resolve_target("llvm"), out)
        assert _temporaries(out) == live and load(out).manifest["params"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    write_artifact(built, resolve_target("llvm"), out)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
