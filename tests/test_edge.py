"""Edge deployment (issue 19): the runtime alone, `dlc package` bundles, an emulated aarch64 board.

Real parts throughout: the digits CNN cross-built for aarch64, a bundle made by `dlc package`,
installed offline by its install.py on Debian's arm64 Python under qemu-aarch64 (`dlc board`,
built by setup.sh), dlc-runtime installed alone in a fresh venv, and the bundle's C++ runner
(runtime/cpp/dlc_run.cc, cross-built by `dlc package`) under qemu-aarch64 with the cross
compiler's sysroot, all compared with the Python runtime on this machine.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dlc.board import ensure_board, install_bundle
from dlc.runtime import ArtifactError, load

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "digits_cnn.arch"


def _dlc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from dlc.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The digits CNN for this machine and for aarch64 (same seed, same weights), an input, its
    output on this machine, and each build's bundle."""
    tmp = tmp_path_factory.mktemp("edge")
    for name, target in (("x86", "llvm"), ("a64", "aarch64")):
        proc = _dlc("compile", str(SPEC), "--target", target, "-o", str(tmp / name))
        assert proc.returncode == 0, proc.stderr
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    np.save(tmp / "x.npy", x)
    np.save(tmp / "y.npy", load(tmp / "x86")(x)["logits"])
    for name, platform in (("x86", "x86_64"), ("a64", "aarch64")):
        proc = _dlc("package", str(tmp / name), "--platform", platform, "-o", str(tmp / f"{name}.tar.gz"))
        assert proc.returncode == 0, proc.stderr
        with tarfile.open(tmp / f"{name}.tar.gz") as tar:
            tar.extractall(tmp / "unpacked", filter="data")
    return {"dir": tmp}


@pytest.fixture(scope="module")
def several(tmp_path_factory) -> Path:
    """Two-input (Siamese) and three-output (VAE) artifacts for this machine, and their inputs."""
    tmp = tmp_path_factory.mktemp("several")
    for name in ("siamese", "vae"):
        proc = _dlc("compile", str(ROOT / "spec" / f"{name}.arch"), "--target", "llvm", "-o", str(tmp / name))
        assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(1)
    for name, batch in (("x1", 3), ("x2", 3), ("x2_short", 2)):
        np.save(tmp / f"{name}.npy", rng.random((batch, 1, 28, 28), dtype=np.float32))
    np.save(tmp / "ints.npy", np.zeros((3, 1, 28, 28), np.int64))
    (tmp / "garbage.npy").write_bytes(b"not an array\n")
    return tmp


def _saved_by_numpy(path: Path) -> bool:
    """The file holds exactly what np.save writes for the array it holds."""
    buf = io.BytesIO()
    np.save(buf, np.load(path))
    return buf.getvalue() == path.read_bytes()


def test_an_artifact_for_another_machine_is_refused_with_both_architectures(built):
    tmp = built["dir"]
    with pytest.raises(ArtifactError, match=r"built for aarch64 \(`--target aarch64`\), and this machine is x86_64"):
        load(tmp / "a64")
    proc = _dlc("run", str(tmp / "a64"), "--input", str(tmp / "x.npy"), "--output", str(tmp / "never.npy"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: `") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp / "never.npy").exists()
    proc = _dlc("package", str(tmp / "a64"), "--platform", "x86_64", "-o", str(tmp / "wrong.tar.gz"))
    assert proc.returncode == 1 and "built for aarch64" in proc.stderr
    assert not (tmp / "wrong.tar.gz").exists()


def test_bundle_holds_the_runtime_and_tvm_without_its_compiler(built):
    with tarfile.open(built["dir"] / "a64.tar.gz") as tar:
        names = tar.getnames()
    wheels = sorted(Path(n).name.split("-")[0] for n in names if n.endswith(".whl"))
    assert wheels == ["apache_tvm", "apache_tvm_ffi", "dlc_runtime", "ml_dtypes", "numpy", "pip", "typing_extensions"]
    assert {"a64/install.py", "a64/run.py", "a64/artifact/manifest.json", "a64/artifact/model.so"} <= set(names)
    import zipfile

    with tarfile.open(built["dir"] / "a64.tar.gz") as tar:
        member = next(m for m in tar.getmembers() if Path(m.name).name.startswith("apache_tvm-"))
        with zipfile.ZipFile(tar.extractfile(member)) as wheel:
            files = wheel.namelist()
    assert "tvm/lib/libtvm_runtime.so" in files and "tvm/lib/libtvm_compiler.so" not in files


def test_runtime_installs_alone_in_a_fresh_venv_and_runs_the_artifact(built, tmp_path):
    tmp = built["dir"]
    with tarfile.open(tmp / "x86.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    bundle = tmp_path / "x86"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    proc = subprocess.run([str(python), str(bundle / "install.py"), "--env"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                             "print(' '.join(sorted(d.metadata['Name'].lower().replace('_', '-') for d in m.distributions())))"],
                            capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert listed == ["apache-tvm", "apache-tvm-ffi", "dlc-runtime", "ml-dtypes", "numpy", "typing-extensions"]
    out = tmp_path / "y.npy"
    proc = subprocess.run([str(tmp_path / "venv" / "bin" / "dlc-run"), str(bundle / "artifact"),
                           "--input", str(tmp / "x.npy"), "--output", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(out), np.load(tmp / "y.npy"))


def test_aarch64_bundle_runs_on_the_emulated_board_like_this_machine(built, tmp_path):
    tmp = built["dir"]
    board = ensure_board()
    root = install_bundle(board, tmp / "a64.tar.gz")
    out = tmp_path / "y.npy"
    proc = subprocess.run(board.python(root / "run.py", "--input", tmp / "x.npy", "--output", out),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "logits: float32[4, 10]"
    want, got = np.load(tmp / "y.npy"), np.load(out)
    assert want.shape == got.shape
    assert float(np.abs(want - got).max()) <= 1e-5


def test_cpp_runner_on_emulated_aarch64_matches_the_python_runtime(built, tmp_path):
    tmp = built["dir"]
    runner = tmp / "unpacked" / "a64" / "bin" / "dlc-run"
    assert runner.read_bytes()[:4] == b"\x7fELF" and runner.read_bytes()[18] == 0xB7  # EM_AARCH64
    out = tmp_path / "y.npy"
    proc = subprocess.run([shutil.which("qemu-aarch64"), "-L", "/usr/aarch64-linux-gnu", str(runner),
                           str(tmp / "unpacked" / "a64" / "artifact"), "--input", str(tmp / "x.npy"), "--output", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "logits: float32[4, 10]"
    want, got = np.load(tmp / "y.npy"), np.load(out)
    assert want.shape == got.shape
    assert float(np.abs(want - got).max()) <= 1e-5
    assert _saved_by_numpy(out)


def test_cpp_runner_feeds_several_inputs_and_saves_several_outputs_like_the_python_runtime(built, several, tmp_path):
    runner = built["dir"] / "unpacked" / "x86" / "bin" / "dlc-run"
    proc = subprocess.run([str(runner), str(several / "siamese"), "--input", f"x2={several / 'x2.npy'}",
                           "--input", f"x1={several / 'x1.npy'}", "--output", str(tmp_path / "s.npy")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    want = load(several / "siamese")(x1=np.load(several / "x1.npy"), x2=np.load(several / "x2.npy"))["similarity"]
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), want)
    assert _saved_by_numpy(tmp_path / "s.npy")  # a 1-d output: the header's shape is (3,)

    proc = subprocess.run([str(runner), str(several / "vae"), "--input", str(several / "x1.npy"),
                           "--output", str(tmp_path / "vae")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    want = load(several / "vae")(np.load(several / "x1.npy"))
    assert sorted(p.name for p in (tmp_path / "vae").iterdir()) == sorted(f"{n}.npy" for n in want)
    for name, array in want.items():
        np.testing.assert_array_equal(np.load(tmp_path / "vae" / f"{name}.npy"), array)
        assert _saved_by_numpy(tmp_path / "vae" / f"{name}.npy")
    assert proc.stdout.splitlines() == [f"{n}: float32{list(a.shape)}" for n, a in want.items()]


@pytest.mark.parametrize("args, message", [
    (["siamese", "--input", "x1={d}/x1.npy", "--input", "x2={d}/x2_short.npy"], "dim `B` is 3 in one input and 2 in `x2`"),
    (["siamese", "--input", "{d}/x1.npy"], "name each input: --input NAME=X.npy (inputs: x1, x2)"),
    (["siamese", "--input", "x1={d}/x1.npy"], "missing: x2"),
    (["vae", "--input", "{d}/ints.npy"], "input `x` must be float32, got int64"),
    (["vae", "--input", "{d}/garbage.npy"], "not a .npy file"),
    (["vae", "--input", "{d}/absent.npy"], "cannot read"),
    (["{d}", "--input", "{d}/x1.npy"], "is not a dlc artifact (no manifest.json)"),
    (["{a64}", "--input", "{d}/x1.npy"], "is built for aarch64, and this runner for x86_64"),
    (["vae", "--input", "{d}/x1.npy", "--bogus"], "unexpected argument `--bogus`"),
])
def test_cpp_runner_refuses_bad_input_in_one_line_and_writes_nothing(built, several, tmp_path, args, message):
    runner = built["dir"] / "unpacked" / "x86" / "bin" / "dlc-run"
    fill = {"d": several, "a64": built["dir"] / "unpacked" / "a64" / "artifact"}
    argv = [a.format(**fill) for a in args]
    argv[0] = argv[0] if "/" in argv[0] else str(several / argv[0])
    proc = subprocess.run([str(runner), *argv, "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []
