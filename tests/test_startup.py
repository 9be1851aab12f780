"""Start-up (issue 21): what a fresh process imports to run an artifact, and the parser's cache.

Fresh processes (real subprocesses) run a small artifact (the digits MLP, compiled once by `dlc
compile`) through `dlc.runtime.load` and through `dlc run`: neither imports torch, ml_dtypes,
TVM's Python package (`tvm`, so no `tvm.relax`), lark or the dlc compiler, and both give the
outputs this process's `load` gives. torch imported after a load imports and works, and so does
the model. The front end's Lark parser tables are cached under `$DLC_CACHE/parser/`: a second
process reads the file the first one wrote, and a corrupt file, a file others may write and a
cache directory that cannot be made all leave `dlc check` reporting exactly the golden
diagnostics. How fast any of this is, is benchmarks/startup.py's business: no timing here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SPEC
from dlc.runtime import load

NOT_IMPORTED = ("torch", "ml_dtypes", "tvm", "tvm.relax", "lark", "dlc.compiler")
CENSUS = "json.dump(sorted(sys.modules), open(sys.argv[1], 'w'))"
GOLDEN = [ROOT / "tests" / "diagnostics" / f"{name}.arch" for name in ("syntax_error", "several_errors")]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[Path, Path]:
    """The digits MLP compiled by `dlc compile` for this CPU (seeded weights), and an input."""
    root = tmp_path_factory.mktemp("startup")
    proc = subprocess.run([sys.executable, "-m", "dlc", "compile", str(SPEC / "digits_mlp.arch"), "-o",
                           str(root / "art")], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
    np.save(root / "x.npy", np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32))
    return root / "art", root / "x.npy"


def _imported(census: Path, names: tuple[str, ...] = NOT_IMPORTED) -> list[str]:
    modules = json.loads(census.read_text())
    return [name for name in names if any(m == name or m.startswith(name + ".") for m in modules)]


def _in_process(art: Path, x: Path) -> np.ndarray:
    return load(art)(x=np.load(x))["logits"]


def test_a_fresh_process_loads_and_runs_an_artifact_without_torch_tvm_or_the_compiler(digits, tmp_path):
    art, x = digits
    expected = _in_process(art, x)
    code = ("import json, sys, numpy as np; from dlc.runtime import load; "
            "np.save(sys.argv[2], load(sys.argv[3])(x=np.load(sys.argv[4]))['logits']); " + CENSUS)
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "modules.json"), str(tmp_path / "y.npy"),
                           str(art), str(x)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _imported(tmp_path / "modules.json") == []
    assert _imported(tmp_path / "modules.json", ("tvm_ffi", "numpy")) == ["tvm_ffi", "numpy"]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_torch_imports_and_works_after_a_load_and_so_does_the_model(digits, tmp_path):
    art, x = digits
    code = ("import sys, numpy as np; from dlc.runtime import load; m = load(sys.argv[1]); x = np.load(sys.argv[2]); "
            "before = m(x=x)['logits']; import torch; "
            "assert torch.ones(3).sum().item() == 3 and 'torch' in sys.modules; "
            "assert (m(x=x)['logits'] == before).all() and (load(sys.argv[1])(x=x)['logits'] == before).all(); "
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code, str(art), str(x)], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0 and proc.stdout.split() == ["ok"], proc.stderr


def test_dlc_run_imports_neither_the_compiler_nor_lark_nor_torch(digits, tmp_path):
    art, x = digits
    code = "import json, sys; from dlc.cli import main; rc = main(sys.argv[2:]); " + CENSUS + "; sys.exit(rc)"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "modules.json"), "run", str(art),
                           "--input", str(x), "--output", str(tmp_path / "y.npy")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "logits: float32[3, 10]\n"
    assert _imported(tmp_path / "modules.json") == []
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), _in_process(art, x))


# ---- the parser's cache ---------------------------------------------------------------------------

def _check(cache: Path, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlc", "check", *(str(f.relative_to(ROOT)) for f in files)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "DLC_CACHE": str(cache)})


def _cache_files(cache: Path) -> list[Path]:
    return sorted((cache / "parser").iterdir()) if (cache / "parser").is_dir() else []


def _identity(file: Path) -> tuple:
    """What changes when a process writes the file: it is replaced whole (a new inode) when written."""
    st = file.stat()
    return st.st_ino, st.st_mtime_ns, file.read_bytes()


def _assert_golden(cache: Path) -> None:
    """`dlc check` of a good spec passes, and of each golden bad spec prints exactly its golden
    diagnostics (spans and all), with whatever `cache` holds."""
    proc = _check(cache, SPEC / "lenet5.arch")
    assert proc.returncode == 0, proc.stderr
    for spec in GOLDEN:
        proc = _check(cache, spec)
        assert proc.returncode == 1 and proc.stderr == spec.with_suffix(".err").read_text(), proc.stderr


def test_the_parser_tables_one_process_caches_the_next_ones_read(tmp_path):
    cache = tmp_path / "cache"
    assert _check(cache, SPEC / "lenet5.arch").returncode == 0
    files = _cache_files(cache)
    assert len(files) == 1 and files[0].name.startswith("arch-") and files[0].stat().st_size > 0
    written = _identity(files[0])
    _assert_golden(cache)  # each process read the tables: one that could not would have replaced the file
    assert _cache_files(cache) == files and _identity(files[0]) == written  # and no temporary file is left


def test_a_corrupt_cache_file_still_parses_and_is_replaced(tmp_path):
    cache = tmp_path / "cache"
    assert _check(cache, SPEC / "lenet5.arch").returncode == 0
    [file] = _cache_files(cache)
    file.write_bytes(file.read_bytes()[:1000])  # a pickle cut short
    cut = _identity(file)
    proc = _check(cache, GOLDEN[0])
    assert proc.returncode == 1 and proc.stderr == GOLDEN[0].with_suffix(".err").read_text(), proc.stderr
    assert _cache_files(cache) == [file] and _identity(file)[0] != cut[0]
    rewritten = _identity(file)
    _assert_golden(cache)
    assert _identity(file) == rewritten  # the new one is read


def test_a_cache_file_others_may_write_is_not_read_but_replaced(tmp_path):
    cache = tmp_path / "cache"
    assert _check(cache, SPEC / "lenet5.arch").returncode == 0
    [file] = _cache_files(cache)
    file.chmod(0o666)
    shared = _identity(file)
    _assert_golden(cache)
    assert _identity(file)[0] != shared[0] and file.stat().st_mode & 0o022 == 0


def test_a_cache_directory_that_cannot_be_made_only_means_no_cache(tmp_path):
    cache = tmp_path / "a-file"
    cache.write_text("not a directory")
    _assert_golden(cache)
    assert list(tmp_path.iterdir()) == [cache] and cache.read_text() == "not a directory"
