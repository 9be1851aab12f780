"""The artifact directory a TVM build is written to: `model.so`, `weights.npz`, `manifest.json`.

The format name comes from the runtime (`dlc.runtime.artifact.FORMAT`), which reads and checks
what this module writes: the manifest records the sha256 of every file beside it (`sha256`) and
each weight's dtype and shape (`param_specs`, in the order of `params`).

The directory appears whole or not at all, and a write that is killed is recovered by the next:
the artifact is written into `.OUT.<random>` beside OUT (tempfile's suffix), then swapped in by
two renames, OUT -> `.OUT.old` and `.OUT.<random>` -> OUT. The next write to OUT first finishes
or rolls back a swap that was cut short (OUT missing and a complete `.OUT.old`: it is renamed
back; OUT present: `.OUT.old` is removed), then removes the `.OUT.<random>` directories that
killed runs left. Those steps and the swap hold an exclusive flock on OUT's parent directory,
and each writer holds one on its own temporary directory, so a concurrent `dlc compile -o OUT`
is never mistaken for a dead one; a temporary directory counts as stale only if it is unlocked,
older than this run, and holds nothing but artifact files.

For tests only: `DLC_TEST_ARTIFACT_PAUSE=written` sleeps a minute once the temporary directory
is complete, `=swapping` between the two renames, `=swapped` after them (before `.OUT.old` is
removed), so that a test can SIGKILL the writer there.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np

from dlc.runtime.artifact import FORMAT, previous_artifact, sha256_of

from ...ir.graph import Graph
from .targets import TargetSpec

if TYPE_CHECKING:
    from .build import Built


def manifest(graph: Graph, spec: TargetSpec, spec_hash: str, spec_path: str,
              dims: Mapping[str, int] | None) -> dict[str, Any]:
    import tvm

    def tensor(name: str, vid: int) -> dict[str, Any]:
        t = graph.values[vid].type
        shape = [d.evaluate(dims) if dims is not None else d.value if d.is_const else str(d) for d in t.shape]
        return {"name": name, "dtype": _NUMPY_DTYPES[t.dtype], "shape": shape}

    return {
        "format": FORMAT,
        "model": graph.name,
        "spec": spec_path,
        "spec_sha256": spec_hash,
        "target": {"name": spec.name, "tvm": spec.target, "host": spec.host, "device": spec.device},
        "tvm_version": tvm.__version__,
        "inputs": [tensor(n, v) for n, v in graph.inputs],
        "outputs": [tensor(n, v) for n, v in graph.outputs],
        "dims": dict(graph.dim_examples) if dims is None else dict(dims),
        "tuning": {"trials": 0, "tasks": 0, "note": "untuned: TVM's default schedules"},
        "library": "model.so",
        "weights": "weights.npz",
    }


_NUMPY_DTYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "bf16": "bfloat16", "i64": "int64",
                 "i32": "int32", "u8": "uint8", "bool": "bool"}


ARTIFACT_FILES = {"model.so", "weights.npz", "manifest.json", "kernels.cu"}


def write_artifact(built: Built, spec: TargetSpec, out: Path) -> None:
    """Write the artifact into a temporary directory beside `out`, then swap it into place
    (recovering what an interrupted earlier write left first)."""
    out = Path(out).absolute()
    started = time.time()
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out.parent):
        recover_interrupted_write(out, started)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with _locked(tmp):  # this run's: not stale while it lives
            tmp.chmod(0o755)
            _write_files(built, spec, tmp)
            _test_pause("written")
            with _locked(out.parent):
                _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_files(built: Built, spec: TargetSpec, into: Path) -> None:
    kwargs = {"cc": spec.cc} if spec.cc else {}
    built.executable.export_library(str(into / "model.so"), **kwargs)
    weights = {name: np.asarray(array) for name, array in built.params}
    np.savez(into / "weights.npz", **weights)
    if built.cuda_source is not None:
        (into / "kernels.cu").write_text(built.cuda_source)
    built.manifest["params"] = list(weights)
    built.manifest["param_specs"] = [{"name": name, "dtype": str(array.dtype), "shape": list(array.shape)}
                                     for name, array in weights.items()]
    built.manifest["sha256"] = {f.name: sha256_of(f) for f in sorted(into.iterdir())}
    (into / "manifest.json").write_text(json.dumps(built.manifest, indent=2) + "\n")


def _swap_in(tmp: Path, out: Path) -> None:
    if not out.exists():
        tmp.rename(out)
        return
    old = previous_artifact(out)
    out.rename(old)
    _test_pause("swapping")
    tmp.rename(out)
    _test_pause("swapped")
    _remove(old)


def recover_interrupted_write(out: Path, started: float) -> None:
    """Finish or roll back the swap of a `write_artifact(..., out)` that was killed, and remove
    the temporary directories killed writers left (the caller holds the parent's lock)."""
    old = previous_artifact(out)
    if old.exists() or old.is_symlink():
        if not out.exists() and _looks_complete(old):
            old.rename(out)  # killed between the renames: the previous artifact goes back
        else:
            _remove(old)  # the new one was already in place
    for stale in _stale_temporaries(out, started):
        shutil.rmtree(stale, ignore_errors=True)


def _stale_temporaries(out: Path, started: float) -> Iterator[Path]:
    """`.OUT.<tempfile suffix>` directories of dead writers: unlocked, older than `started`,
    holding artifact files only."""
    ours = re.compile(re.escape(f".{out.name}.") + r"[a-z0-9_]{8}")
    for candidate in sorted(out.parent.iterdir()):
        if not ours.fullmatch(candidate.name) or candidate.is_symlink() or not candidate.is_dir():
            continue
        if candidate.stat().st_mtime >= started or not {f.name for f in candidate.iterdir()} <= ARTIFACT_FILES:
            continue
        try:
            with _locked(candidate, wait=False):
                yield candidate
        except BlockingIOError:  # a live writer's
            continue


def _looks_complete(artifact: Path) -> bool:
    """A manifest that names files which are there (the swap renames whole directories, so a
    `.OUT.old` is either a whole artifact or one being removed)."""
    try:
        manifest = json.loads((artifact / "manifest.json").read_text())
        return all((artifact / manifest[key]).is_file() for key in ("library", "weights"))
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextlib.contextmanager
def _locked(directory: Path, wait: bool = True) -> Iterator[None]:
    """An exclusive flock on a directory, released when the block ends or the process dies."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _test_pause(phase: str) -> None:
    if os.environ.get("DLC_TEST_ARTIFACT_PAUSE") == phase:
        time.sleep(60)
