"""Load a compiled dlc artifact and run it: numpy arrays in, numpy arrays out, by name.

What this module imports itself: numpy and `tvm.runtime` -- never the dlc compiler, never torch
(a test runs it with torch blocked). What that pulls in is TVM's business and is large: with
the full apache-tvm wheel, `import tvm.runtime` imports the whole `tvm` package (about 800
modules here, Relax and TOPI included), and apache-tvm-ffi imports torch when torch is
installed; with `TVM_USE_RUNTIME_LIB=1` it loads TVM's runtime library only (about 140
modules, no compiler). `FORMAT` names the artifact layout; the writer
(`dlc.compiler.backends.tvm.artifact`) imports it from here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

FORMAT = "dlc-artifact/1"


class ArtifactError(Exception):
    """A missing or malformed artifact, or inputs that do not match its manifest."""


class CompiledModel:
    """A loaded artifact; call it with keyword arrays (or one positional array)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        check_machine(self.path, self.manifest)
        device = self.manifest["target"].get("device", "cpu")
        if device == "cpu":
            _default_threads(self.manifest)
        import tvm.runtime
        import tvm.runtime.vm  # not loaded by `tvm.runtime` alone under TVM_USE_RUNTIME_LIB=1

        self.device = tvm.runtime.cuda(0) if device == "cuda" else tvm.runtime.cpu(0)
        if device == "cuda":
            _load_cuda_runtime(self.device)
        library = tvm.runtime.load_module(str(self.path / self.manifest["library"]))
        self._vm = tvm.runtime.vm.VirtualMachine(library, self.device)
        with np.load(self.path / self.manifest["weights"]) as weights:
            self._params = [tvm.runtime.tensor(weights[name], self.device) for name in self.manifest["params"]]
        if self.manifest.get("transform_params"):  # weight-only work, once
            self._params = list(self._vm[self.manifest["transform_params"]](self._params))
        self.inputs = self.manifest["inputs"]
        self.outputs = self.manifest["outputs"]

    def __call__(self, *args: np.ndarray, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        import tvm.runtime

        feeds = self._feeds(args, kwargs)
        arrays = [tvm.runtime.tensor(feeds[spec["name"]], self.device) for spec in self.inputs]
        result = self._vm["main"](*arrays, *self._params)
        results = [result] if len(self.outputs) == 1 else list(result)
        return {spec["name"]: r.numpy() for spec, r in zip(self.outputs, results, strict=True)}

    def _feeds(self, args: tuple, kwargs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if args:
            if len(args) != len(self.inputs) or kwargs:
                raise ArtifactError(f"pass the inputs by name: {', '.join(i['name'] for i in self.inputs)}")
            kwargs = {spec["name"]: a for spec, a in zip(self.inputs, args)}
        validate_inputs(self.inputs, kwargs)
        return {k: np.ascontiguousarray(v) for k, v in kwargs.items()}


def _default_threads(manifest: dict[str, Any]) -> None:
    """Run on the cores the artifact was tuned for (its target's `num-cores`), at most those this
    process may use, unless TVM_NUM_THREADS says otherwise.

    TVM's own default is hardware_concurrency / 2 (one thread on two cores), which ran tuned
    ResNet-18 at 77 ms instead of 44. TVM reads the variable when its thread pool first starts,
    so this holds for the first artifact a process loads."""
    if "TVM_NUM_THREADS" in os.environ:
        return
    available = usable_cores()
    cores = manifest["target"].get("tvm", {}).get("num-cores") or available
    os.environ["TVM_NUM_THREADS"] = str(max(1, min(int(cores), available)))


def usable_cores() -> int:
    """Cores this process may run on (what a build for this host is tuned and run with)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _load_cuda_runtime(device) -> None:
    """TVM's CUDA runtime is a sidecar library (it needs libcudart and the driver) that the
    runtime-only import (`TVM_USE_RUNTIME_LIB=1`) does not load. TVM's wheel keeps the kernels as
    CUDA C, compiled for this GPU when the library loads, through `tvm_callback_cuda_compile`:
    TVM's own callback asks the compiler library for the current target, so register one that
    asks the device instead (NVRTC; nvcc with TVM_CUDA_COMPILE_MODE=nvcc)."""
    import ctypes

    import tvm
    import tvm_ffi

    if tvm_ffi.get_global_func("ffi.Module.load_from_bytes.cuda", allow_missing=True) is None:
        ctypes.CDLL(str(Path(tvm.__file__).parent / "lib" / "libtvm_runtime_cuda.so"), mode=ctypes.RTLD_GLOBAL)
    from tvm.support import nvcc

    arch = "sm_" + device.compute_version.replace(".", "")

    @tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
    def _compile(code: str) -> bytes:
        if os.environ.get("TVM_CUDA_COMPILE_MODE", "nvrtc").lower() == "nvcc":
            return nvcc.compile_cuda(code, target_format="fatbin", arch=arch, compiler="nvcc")
        return nvcc.compile_cuda(code, target_format="cubin", arch=arch, compiler="nvrtc")


# ELF e_machine values (the System V ABI's registry) and the names platform.machine() gives them
ELF_MACHINES = {0x03: "x86", 0x28: "arm", 0x3E: "x86_64", 0xB7: "aarch64", 0xF3: "riscv64"}
MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "x86", "i686": "x86"}


def library_machine(library: Path) -> str | None:
    """The architecture a shared library is built for, from its ELF header (None: not ELF)."""
    try:
        with open(library, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"ELF machine {machine:#x}")


def this_machine() -> str:
    import platform

    machine = platform.machine().lower()
    return MACHINE_ALIASES.get(machine, machine)


def check_machine(path: Path, manifest: dict[str, Any]) -> None:
    """Refuse an artifact built for another architecture before the loader does (it says only
    `cannot open shared object file`, or worse, `wrong ELF class`)."""
    library = path / manifest["library"]
    if not library.is_file():
        raise ArtifactError(f"`{path}` has no `{manifest['library']}` (its manifest names it)")
    built_for = library_machine(library)
    here = this_machine()
    if built_for is not None and built_for != here:
        target = manifest["target"].get("name", "?")
        raise ArtifactError(f"`{path}` is built for {built_for} (`--target {target}`), and this machine is {here}: "
                            f"compile it here with `dlc compile --target llvm`, or run it on that "
                            f"machine (`dlc package {path} --platform {built_for}` makes a bundle to copy there)")


def load(path: str | Path) -> CompiledModel:
    """Load the artifact directory written by `dlc compile`."""
    return CompiledModel(Path(path))


def validate_inputs(specs: list[dict[str, Any]], feeds: Mapping[str, np.ndarray]) -> None:
    """Names, dtypes and shapes against the manifest; a symbolic dim must be the same everywhere."""
    names = [s["name"] for s in specs]
    missing = [n for n in names if n not in feeds]
    extra = [n for n in feeds if n not in names]
    if missing or extra:
        raise ArtifactError(f"inputs are {', '.join(names)}; missing: {', '.join(missing) or '-'}; "
                            f"unexpected: {', '.join(extra) or '-'}")
    bound: dict[str, int] = {}
    for spec in specs:
        array = np.asarray(feeds[spec["name"]])
        if str(array.dtype) != spec["dtype"]:
            raise ArtifactError(f"input `{spec['name']}` must be {spec['dtype']}, got {array.dtype}")
        shape = spec["shape"]
        if array.ndim != len(shape):
            raise ArtifactError(f"input `{spec['name']}` must have shape {_show(shape)}, got {list(array.shape)}")
        for want, got in zip(shape, array.shape):
            if isinstance(want, int) and want != got:
                raise ArtifactError(f"input `{spec['name']}` must have shape {_show(shape)}, got {list(array.shape)}")
            if isinstance(want, str) and bound.setdefault(want, got) != got:
                raise ArtifactError(f"dim `{want}` is {bound[want]} in one input and {got} in `{spec['name']}`")


def _show(shape: list) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise ArtifactError(f"`{path}` is not a dlc artifact (no manifest.json)") from None
    except json.JSONDecodeError as err:
        raise ArtifactError(f"`{path}/manifest.json` is not valid JSON: {err}") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"`{path}` has format {manifest.get('format')!r}, this runtime reads {FORMAT!r}")
    return manifest
