"""`dlc package ARTIFACT --platform aarch64 -o bundle.tar.gz`: one file to copy to a device.

The bundle holds the artifact, the dlc-runtime wheel (built from runtime/ here), the wheels it
needs for the device's platform and Python (pip downloads them once into `cache_dir()`; TVM's is
trimmed of its compiler library, 245 of its 281 MB), pip's own wheel, `install.py`, `run.py`
and `rpc_server.py` (templates/bundle/: the last serves the device to `dlc compile --rpc`), and, where a compiler for the platform is installed, the C++ runner
`bin/dlc-run` with the two TVM libraries it links, for a device without Python. On the device:

    tar xzf bundle.tar.gz && cd BUNDLE && python3 install.py && python3 run.py --input x.npy -o y.npy

nothing is downloaded there. The tarball is written under a temporary name and renamed: no
half-written bundle.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import dlc.runtime
import dlc.templates
from dlc.board import cache_dir
from dlc.runtime.artifact import ArtifactError, library_machine, load_manifest, read_manifest, verify_files


@dataclass(frozen=True)
class Platform:
    """A device's machine and the wheel tags pip may take for it (glibc 2.28 and later)."""

    machine: str
    tags: tuple[str, ...]
    cxx: str  # the C++ compiler that builds bin/dlc-run for it

    def cache(self, python: str) -> Path:
        return cache_dir() / "wheels" / f"manylinux_{self.machine}-cp{python.replace('.', '')}"


PLATFORMS = {
    "aarch64": Platform("aarch64", ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
                        "aarch64-linux-gnu-g++"),
    "x86_64": Platform("x86_64", ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"), "g++"),
}
# what a device does not need of TVM's wheel: the compiler library (dlc.runtime loads only
# libtvm_runtime; TVM falls back to runtime-only when libtvm_compiler is absent), CUTLASS's
# headers, TVM's C++ sources and headers, and the WebAssembly runtime
TRIMMED = ("tvm/lib/libtvm_compiler.so", "tvm/3rdparty/", "tvm/src/", "tvm/include/", "tvm/web/")
RUNNER_SOURCE = Path(dlc.runtime.__file__).parent / "cpp" / "dlc_run.cc"


class PackageError(Exception):
    """The bundle cannot be made; printed as one `error:` line."""


def add_parser(sub) -> None:
    p = sub.add_parser("package", help="bundle an artifact with its runtime for a device, to install offline")
    p.add_argument("artifact", type=Path, metavar="ARTIFACT", help="the directory `dlc compile` wrote")
    p.add_argument("--platform", choices=sorted(PLATFORMS), required=True, help="the device's machine")
    p.add_argument("--python", default="3.11", metavar="X.Y", help="the device's Python (default 3.11)")
    p.add_argument("--no-runner", action="store_true", help="leave out the C++ runner (bin/dlc-run)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="BUNDLE.tar.gz")
    p.set_defaults(run=command, command="package")


def command(args: argparse.Namespace) -> int:
    try:
        summary = package(args.artifact, PLATFORMS[args.platform], args.python, args.output,
                          runner=not args.no_runner, log=lambda m: print(m, file=sys.stderr))
    except (PackageError, ArtifactError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def package(artifact: Path, platform: Platform, python: str, output: Path, *, runner: bool = True,
            log=print) -> str:
    manifest = read_manifest(artifact)
    verify_files(artifact, load_manifest(artifact))  # never bundle a changed or swapped file
    built_for = library_machine(artifact / manifest["library"])
    if built_for != platform.machine:
        raise PackageError(f"`{artifact}` is built for {built_for} (`--target {manifest['target'].get('name')}`), "
                           f"not {platform.machine}: compile it with `--target "
                           f"{'aarch64' if platform.machine == 'aarch64' else 'llvm'}` first")
    if not output.name.endswith(".tar.gz"):
        raise PackageError(f"the bundle is a .tar.gz: `-o {output}`")
    name = output.name[: -len(".tar.gz")]
    with tempfile.TemporaryDirectory(prefix="dlc-package-") as tmp:
        root = Path(tmp) / name
        shutil.copytree(artifact, root / "artifact", ignore=shutil.ignore_patterns(".*"))
        wheels = root / "wheels"
        wheels.mkdir()
        fetched = fetch_wheels(platform, python, log)
        for wheel in fetched:
            if wheel.name.startswith("apache_tvm-"):
                trim_wheel(wheel, wheels / wheel.name, TRIMMED)
            else:
                shutil.copy2(wheel, wheels / wheel.name)
        build_runtime_wheel(wheels)
        has_runner = runner and build_runner(platform, fetched, root, log)
        for script in ("install.py", "run.py", "rpc_server.py"):
            shutil.copy2(Path(dlc.templates.__file__).parent / "bundle" / script, root / script)
        (root / "README.txt").write_text(_readme(name, platform, python, manifest, has_runner))
        (root / "bundle.json").write_text(json.dumps(_describe(root, platform, python), indent=2) + "\n")
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        try:
            with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
                tar.add(root, arcname=name, filter=_normalize)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
    size = output.stat().st_size / 2**20
    return (f"{output}: `{artifact}` for {platform.machine}, Python {python}, {size:.1f} MiB"
            + (", with the C++ runner" if has_runner else ""))


def runtime_requirements() -> list[str]:
    """dlc-runtime's own dependencies, from runtime/pyproject.toml (the one list of them)."""
    project = tomllib.loads((Path(dlc.runtime.__file__).parent / "pyproject.toml").read_text())
    return list(project["project"]["dependencies"])


def fetch_wheels(platform: Platform, python: str, log=print) -> list[Path]:
    """The wheels dlc-runtime needs on PLATFORM, plus pip's: from the cache, else downloaded
    into it (the only step that uses the network; `dlc board setup` does it ahead of time)."""
    cache = platform.cache(python)
    cache.mkdir(parents=True, exist_ok=True)
    requirements = [*runtime_requirements(), "pip"]
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--abi", f"cp{python.replace('.', '')}", *(f"--platform={t}" for t in platform.tags), "-d", str(cache)]
    offline = subprocess.run([*base, "--no-index", "--find-links", str(cache), *requirements], capture_output=True, text=True)
    if offline.returncode != 0:
        log(f"package: downloading the {platform.machine} wheels of {', '.join(requirements)} into {cache}")
        online = subprocess.run([*base, *requirements], capture_output=True, text=True)
        if online.returncode != 0:
            tail = " / ".join(online.stderr.strip().splitlines()[-2:])
            raise PackageError(f"cannot get the {platform.machine} wheels (pip download: {tail})")
    return _resolved(cache, requirements, base)


def _resolved(cache: Path, requirements: list[str], base: list[str]) -> list[Path]:
    """The wheels pip picks from the cache for the requirements (the cache may hold older ones)."""
    with tempfile.TemporaryDirectory() as pick:
        argv = [*base[:-2], "-d", pick, "--no-index", "--find-links", str(cache), *requirements]
        subprocess.run(argv, check=True, capture_output=True)
        return sorted(cache / p.name for p in Path(pick).iterdir())


def trim_wheel(source: Path, target: Path, drop: tuple[str, ...]) -> None:
    """Copy a wheel without the files under DROP, its RECORD rewritten to match (pip checks it)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        record = next(i.filename for i in src.infolist() if i.filename.endswith(".dist-info/RECORD"))
        for info in src.infolist():
            if info.filename == record or info.filename.startswith(drop):
                continue
            dst.writestr(info, src.read(info))
        kept = [line for line in src.read(record).decode().splitlines() if line and not line.startswith(drop)]
        dst.writestr(record, "\n".join(kept) + "\n")


def build_runtime_wheel(into: Path) -> Path:
    """dlc-runtime's wheel from runtime/*.py and runtime/pyproject.toml (not its subpackages)."""
    source = Path(dlc.runtime.__file__).parent
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "dlc-runtime"
        tree.mkdir()
        for file in [*source.glob("*.py"), source / "pyproject.toml"]:
            shutil.copy2(file, tree / file.name)
        # setuptools from this environment where it has one: no download for the build
        isolation = ["--no-build-isolation"] if _has_setuptools() else []
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                *isolation, "-w", str(into), str(tree)]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise PackageError(f"cannot build the dlc-runtime wheel: {proc.stderr.strip().splitlines()[-1:]}")
    return next(into.glob("dlc_runtime-*.whl"))


def _has_setuptools() -> bool:
    import importlib.util

    return importlib.util.find_spec("setuptools") is not None


def build_runner(platform: Platform, wheels: list[Path], root: Path, log=print) -> bool:
    """bin/dlc-run and lib/ (TVM's runtime and FFI libraries for the platform), if the platform's
    C++ compiler is here; the build is cached by the source's and the libraries' digest."""
    if not RUNNER_SOURCE.exists():
        log(f"package: no {RUNNER_SOURCE}: the bundle has no C++ runner")
        return False
    if shutil.which(platform.cxx) is None:
        log(f"package: no `{platform.cxx}` here: the bundle has no C++ runner")
        return False
    libs = _wheel_libs(wheels)
    (root / "lib").mkdir()
    for lib in libs:
        shutil.copy2(lib, root / "lib" / lib.name)
    # the wheels' names carry the TVM versions the runner is built against
    key = RUNNER_SOURCE.read_bytes() + "\n".join(sorted(w.name for w in wheels)).encode() + platform.cxx.encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    cached = cache_dir() / "runners" / f"{platform.machine}-{digest}" / "dlc-run"
    if not cached.exists():
        compile_runner(platform, root / "lib", cached)
    (root / "bin").mkdir()
    shutil.copy2(cached, root / "bin" / "dlc-run")
    return True


def _wheel_libs(wheels: list[Path]) -> list[Path]:
    """libtvm_runtime.so and libtvm_ffi.so unpacked from the platform's wheels (cached beside them)."""
    wanted = {"apache_tvm-": "tvm/lib/libtvm_runtime.so", "apache_tvm_ffi-": "tvm_ffi/lib/libtvm_ffi.so"}
    paths = []
    for prefix, member in wanted.items():
        wheel = next(w for w in wheels if w.name.startswith(prefix))
        path = wheel.parent / "libs" / wheel.stem / Path(member).name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as z:
                path.with_suffix(".tmp").write_bytes(z.read(member))
            path.with_suffix(".tmp").replace(path)
        paths.append(path)
    return paths


def compile_runner(platform: Platform, libdir: Path, target: Path) -> None:
    """The C++ runner, compiled against the host's TVM headers and the platform's libraries."""
    import tvm
    import tvm_ffi

    tvm_root, ffi_root = Path(tvm.__file__).parent, Path(tvm_ffi.__file__).parent
    includes = [tvm_root / "include", ffi_root / "include", *sorted(ffi_root.glob("3rdparty/*/include")),
                *sorted(tvm_root.glob("3rdparty/*/include"))]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.tmp")
    argv = [platform.cxx, "-std=c++17", "-O2", "-o", str(partial), str(RUNNER_SOURCE),
            *(f"-I{i}" for i in includes if i.is_dir()), f"-L{libdir}", "-ltvm_runtime", "-ltvm_ffi",
            "-Wl,-rpath,$ORIGIN/../lib", "-Wl,--allow-shlib-undefined"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PackageError(f"cannot build the C++ runner with {platform.cxx}: "
                           + " / ".join(proc.stderr.strip().splitlines()[:3]))
    partial.replace(target)


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """The same bundle for the same inputs: no owner or time of this machine in it."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def _describe(root: Path, platform: Platform, python: str) -> dict:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {"format": "dlc-bundle/1", "platform": platform.machine, "python": python,
            "files": {str(p.relative_to(root)): _sha256(p) for p in files}}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _readme(name: str, platform: Platform, python: str, manifest: dict, runner: bool) -> str:
    inputs = ", ".join(f"{i['name']} {i['dtype']}{i['shape']}" for i in manifest["inputs"])
    text = f"""{name}: a dlc artifact for {platform.machine} Linux with its runtime (Python {python}).

Inputs: {inputs}

On the device, offline:

    python3 install.py                # the runtime into ./site, from wheels/ (no download)
    python3 run.py --input X.npy --output Y.npy

or `python3 install.py --env` inside a venv, then `dlc-run artifact --input X.npy --output Y.npy`.

To tune for this device from the workstation (`dlc compile --tune N --rpc HOST:9190 --device-key KEY`):

    python3 rpc_server.py --tracker HOST:9190 --key KEY
"""
    if runner:
        text += """
Without Python: bin/dlc-run artifact --input X.npy --output Y.npy (its libraries are in lib/).
"""
    return text
