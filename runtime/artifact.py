"""Load a compiled dlc artifact and run it: numpy arrays in, numpy arrays out, by name.

What it imports: numpy, and for a CPU artifact of TVM only `tvm_ffi` and TVM's runtime library
(`libtvm_runtime.so`, found and loaded as `tvm/base.py` does) -- not TVM's Python package, whose
`tvm/__init__` takes about 1 s even with `TVM_USE_RUNTIME_LIB=1` (its IR classes and script
printer; half of it the C++ backtrace of one failed type lookup), never the dlc compiler, never
torch. apache-tvm-ffi imports torch and ml_dtypes whenever they are installed (2 s and, with
numpy 2.4, 1.8 s here), for torch's DLPack and for bfloat16/float8 arrays; a run needs neither,
so when `load` is the first to import tvm_ffi both are kept out of its reach (ml_dtypes is let
in for an artifact with such dtypes), and that process's tvm_ffi has no torch integration:
import torch or tvm before to keep it. A process that imported tvm already is served by the runtime library tvm
loaded. A CUDA artifact imports `tvm` too (for the NVRTC callback), runtime-only
(`TVM_USE_RUNTIME_LIB=1` for that import) unless tvm is imported already or the variable is set.
`FORMAT` names the artifact layout; the writer (`dlc.compiler.backends.tvm.artifact`) imports it,
`sha256_of` and `previous_artifact` from here. The module stands alone (benchmarks/gpu_check.py
loads this file by path): no relative imports.

Integrity. `load` checks an artifact before TVM sees any of it, and every failure is one
`ArtifactError` naming the file and what is wrong:
- `manifest.json` is read into typed records (`Manifest`, `TensorSpec`, `Target`): each field's
  JSON type, sizes and `num-cores` positive integers, names unique.
- the files it names (`library`, `weights`) are relative names inside the artifact directory:
  no absolute path, no `..`, no symlink that leads out of it.
- `model.so` and `weights.npz` must match the sha256 that `dlc compile` recorded in the
  manifest's `sha256` object, checked before the library is loaded (loading a shared library
  runs its code): a swapped or edited file is refused with "recompile".
- `weights.npz` must hold exactly the arrays of the manifest's `param_specs` (name, dtype,
  shape), read without unpickling; `transform_params` must be a function of the library.
An artifact written before dlc recorded the hashes (a manifest with no `sha256`) is refused,
with "recompile": its files cannot be verified, and loading such manifests unchecked would let
anyone skip the check by deleting the field. (The manifest itself is not signed: the hashes
catch a changed, swapped or half-copied file, not a tamperer who also rewrites the manifest.)
If the directory is missing but `.NAME.old` beside it holds an artifact (a `dlc compile -o NAME`
killed mid-replace), the error says so; the next `dlc compile -o NAME` restores or replaces it.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import re
import sys
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping

import numpy as np

FORMAT = "dlc-artifact/1"
# what TVM's Python bindings raise (tvm_ffi maps C++ errors onto these builtins)
TVM_ERRORS = (RuntimeError, ValueError, TypeError, AttributeError)


class ArtifactError(Exception):
    """A missing or malformed artifact, or inputs that do not match its manifest."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input, output or weight: its name, numpy dtype name, and shape (a str: a symbolic dim)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def describe(self) -> str:
        return f"{self.dtype}{_show(self.shape)}"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    device: str  # "cpu" or "cuda"
    num_cores: int | None  # the cores it was tuned for (`target.tvm.num-cores`)


@dataclass(frozen=True, slots=True)
class Manifest:
    """`manifest.json`, checked. `raw` is the JSON object itself (what `dlc bench` and `dlc
    package` read further fields from)."""

    raw: dict[str, Any]
    library: str
    weights: str
    params: tuple[str, ...]
    param_specs: tuple[TensorSpec, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    target: Target
    transform_params: str | None
    sha256: dict[str, str]


class CompiledModel:
    """A loaded artifact; call it with keyword arrays (or one positional array)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.checked_manifest = checked = load_manifest(self.path)
        self.manifest = checked.raw
        library, weights = verify_files(self.path, checked)
        check_machine(self.path, checked)
        if checked.target.device == "cpu":
            _default_threads(checked)
        self._tvm = _tvm_runtime(checked)
        self.device = _cuda_device() if checked.target.device == "cuda" else self._tvm.ffi.device("cpu", 0)
        self._vm = _load_vm(self._tvm, library, self.device)
        self._main = _function(self._vm, library, "main", "every artifact has it")
        self._params = self._prepare_params(library, weights)
        self.inputs = self.manifest["inputs"]
        self.outputs = self.manifest["outputs"]

    def _prepare_params(self, library: Path, weights: dict[str, np.ndarray]) -> list:
        """The weights as TVM tensors, after `transform_params` if the artifact has one. Each numpy
        array is dropped (popped from `weights`) once its tensor is made: one copy at a time."""
        params = [self._tvm.tensor(weights.pop(name), self.device) for name in self.checked_manifest.params]
        transform = self.checked_manifest.transform_params
        if transform is None:
            return params
        function = _function(self._vm, library, transform, "the manifest's `transform_params` names it")
        try:  # weight-only work, once
            return list(function(params))
        except TVM_ERRORS as err:
            raise ArtifactError(f"`{transform}` of `{library}` refuses the weights: {_tvm_message(err)}") from None

    def __call__(self, *args: np.ndarray, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        feeds = self._feeds(args, kwargs)
        arrays = [self._tvm.tensor(feeds[spec["name"]], self.device) for spec in self.inputs]
        library = self.path / self.checked_manifest.library
        try:
            result = self._main(*arrays, *self._params)
        except TVM_ERRORS as err:
            raise ArtifactError(f"`{library}` failed to run: {_tvm_message(err)}") from None
        results = [result] if isinstance(result, self._tvm.ffi.Tensor) else list(result)  # one, or a tuple
        if len(results) != len(self.outputs):
            raise ArtifactError(f"`{library}` returned {len(results)} outputs, its manifest names "
                                f"{len(self.outputs)}")
        return {spec["name"]: self._tvm.numpy(r) for spec, r in zip(self.outputs, results, strict=True)}

    def _feeds(self, args: tuple, kwargs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if args:
            if len(args) != len(self.inputs) or kwargs:
                raise ArtifactError(f"pass the inputs by name: {', '.join(i['name'] for i in self.inputs)}")
            kwargs = {spec["name"]: a for spec, a in zip(self.inputs, args, strict=True)}
        validate_inputs(self.inputs, kwargs)
        return {k: _contiguous(np.asarray(v)) for k, v in kwargs.items()}


def _function(vm, library: Path, name: str, why: str):
    try:
        return vm[name]
    except TVM_ERRORS:
        raise ArtifactError(f"`{library}` has no function `{name}` ({why})") from None


def _tvm_message(err: BaseException) -> str:
    """TVM's message on one line, without the C++ backtrace some of its errors carry."""
    lines = [line.strip() for line in str(err).splitlines()]
    kept = [line for line in lines if line and not line.startswith(("File ", "Traceback", "at "))]
    return " ".join(kept)[:500] or type(err).__name__


def _default_threads(manifest: Manifest) -> None:
    """Run on the cores the artifact was tuned for (its target's `num-cores`), at most those this
    process may use, unless TVM_NUM_THREADS says otherwise.

    TVM's own default is hardware_concurrency / 2 (one thread on two cores), which ran tuned
    ResNet-18 at 77 ms instead of 44. TVM reads the variable when its thread pool first starts,
    so this holds for the first artifact a process loads."""
    if "TVM_NUM_THREADS" in os.environ:
        return
    available = usable_cores()
    cores = manifest.target.num_cores or available
    os.environ["TVM_NUM_THREADS"] = str(max(1, min(cores, available)))


def usable_cores() -> int:
    """Cores this process may run on (what a build for this host is tuned and run with)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---- TVM's runtime library, through tvm_ffi ------------------------------------------------------

POOLED_ALLOCATOR = 2  # what tvm.runtime.vm.VirtualMachine gives each device by default
CPU = 1  # DLPack's device type of the CPU


@dataclass(frozen=True, slots=True)
class TVMRuntime:
    """What a run needs of TVM: the `tvm_ffi` module and three functions of TVM's runtime library,
    the ones `tvm.runtime.tensor` and `Tensor.numpy` call (allocate, copy in, copy out)."""

    ffi: Any
    alloc: Any  # runtime.TVMTensorAllocWithScope(shape, dtype, device, scope) -> Tensor
    copy_from: Any  # runtime.TVMTensorCopyFromBytes(tensor, pointer, nbytes)
    copy_to: Any  # runtime.TVMTensorCopyToBytes(tensor, pointer, nbytes)

    def tensor(self, array: np.ndarray, device) -> Any:
        """A tensor on `device` holding a copy of `array` (in TVM's own aligned memory)."""
        array = _contiguous(np.asarray(array))
        tensor = self.alloc(self.ffi.Shape(array.shape), self.ffi.dtype(str(array.dtype)), device, None)
        self.copy_from(tensor, array.ctypes.data_as(ctypes.c_void_p), array.nbytes)
        return tensor

    def numpy(self, tensor) -> np.ndarray:
        array = np.empty(tuple(tensor.shape), dtype=_numpy_dtype(str(tensor.dtype)))
        self.copy_to(tensor, array.ctypes.data_as(ctypes.c_void_p), array.nbytes)
        return array


def _tvm_runtime(manifest: Manifest) -> TVMRuntime:
    """tvm_ffi (torch and, unless the manifest needs it, ml_dtypes out of its reach when it is
    imported here first) and TVM's runtime library loaded into it."""
    skipped = ("torch",) if _needs_ml_dtypes(manifest) else ("torch", "ml_dtypes")
    try:
        with _unimportable(skipped):
            import tvm_ffi
    except ImportError as err:
        raise ArtifactError(f"cannot import TVM's runtime (the apache-tvm-ffi package): {err}") from None
    if tvm_ffi.get_global_func("runtime.TVMTensorAllocWithScope", allow_missing=True) is None:
        _load_runtime_library(tvm_ffi)  # unless `import tvm` (or an earlier load) did
    functions = (tvm_ffi.get_global_func(f"runtime.TVMTensor{name}") for name in ("AllocWithScope", "CopyFromBytes",
                                                                                  "CopyToBytes"))
    return TVMRuntime(tvm_ffi, *functions)


@contextmanager
def _unimportable(names: tuple[str, ...]) -> Iterator[None]:
    """Within the block, `import NAME` raises ImportError for each name not imported yet (what
    apache-tvm-ffi takes as "not installed"); afterwards they import as usual."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def _needs_ml_dtypes(manifest: Manifest) -> bool:
    specs = (*manifest.inputs, *manifest.outputs, *manifest.param_specs)
    try:
        for spec in specs:
            np.dtype(spec.dtype)
    except TypeError:  # bfloat16, float8_*: numpy knows them through ml_dtypes
        return True
    return False


def _numpy_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))


def _load_runtime_library(tvm_ffi) -> None:
    """`libtvm_runtime` of the installed apache-tvm, found and loaded as `tvm/base.py` loads it
    (RTLD_GLOBAL: model libraries link against its symbols), without importing `tvm`."""
    spec = importlib.util.find_spec("tvm")
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError("cannot find TVM's runtime library: the apache-tvm package is not installed")
    paths = [Path(os.environ["TVM_LIBRARY_PATH"])] if os.environ.get("TVM_LIBRARY_PATH") else []
    paths.append(Path(next(iter(spec.submodule_search_locations))) / "lib")
    try:
        tvm_ffi.libinfo.load_lib_ctypes("tvm", "tvm_runtime", "RTLD_GLOBAL", extra_lib_paths=paths)
    except (OSError, RuntimeError) as err:
        raise ArtifactError(f"cannot load TVM's runtime library: {err}") from None


def _load_vm(runtime: TVMRuntime, library: Path, device):
    """The Relax VM of the library, initialized as tvm.runtime.vm.VirtualMachine initializes it
    (a CUDA one is that class: benchmarks/gpu_check.py uses its `time_evaluator`)."""
    try:
        if device.dlpack_device_type() != CPU:
            import tvm.runtime.vm

            return tvm.runtime.vm.VirtualMachine(tvm.runtime.load_module(str(library)), device)
        vm = runtime.ffi.load_module(str(library.resolve()))["vm_load_executable"]()
        vm["vm_initialization"](CPU, 0, POOLED_ALLOCATOR)
        return vm
    except TVM_ERRORS as err:
        raise ArtifactError(f"TVM cannot load `{library}` as a model library: {_tvm_message(err)}") from None


def _cuda_device():
    """The GPU, with TVM's CUDA runtime loaded: a sidecar library (it needs libcudart and the
    driver) that the runtime library alone lacks. TVM's wheel keeps the kernels as CUDA C,
    compiled for this GPU when the library loads, through `tvm_callback_cuda_compile`: TVM's own
    callback asks the compiler library for the current target, so register one that asks the
    device instead (NVRTC; nvcc with TVM_CUDA_COMPILE_MODE=nvcc)."""
    with _runtime_only_tvm(), _unimportable(("torch", "ml_dtypes")):
        import tvm
        import tvm.runtime
        from tvm.support import nvcc
    import tvm_ffi

    if tvm_ffi.get_global_func("ffi.Module.load_from_bytes.cuda", allow_missing=True) is None:
        ctypes.CDLL(str(Path(tvm.__file__).parent / "lib" / "libtvm_runtime_cuda.so"), mode=ctypes.RTLD_GLOBAL)
    device = tvm.runtime.cuda(0)
    arch = "sm_" + device.compute_version.replace(".", "")

    @tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
    def _compile(code: str) -> bytes:
        if os.environ.get("TVM_CUDA_COMPILE_MODE", "nvrtc").lower() == "nvcc":
            return nvcc.compile_cuda(code, target_format="fatbin", arch=arch, compiler="nvcc")
        return nvcc.compile_cuda(code, target_format="cubin", arch=arch, compiler="nvrtc")

    return device


@contextmanager
def _runtime_only_tvm() -> Iterator[None]:
    """`import tvm` within the block loads its runtime library only (TVM_USE_RUNTIME_LIB=1), unless
    tvm is imported already or the caller set the variable; the environment is restored after,
    so child processes see the caller's. A process that wants TVM's compiler too imports tvm first."""
    if "tvm" in sys.modules or "TVM_USE_RUNTIME_LIB" in os.environ:
        yield
        return
    os.environ["TVM_USE_RUNTIME_LIB"] = "1"
    try:
        yield
    finally:
        del os.environ["TVM_USE_RUNTIME_LIB"]


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


def check_machine(path: Path, manifest: Manifest) -> None:
    """Refuse an artifact built for another architecture before the loader does (it says only
    `cannot open shared object file`, or worse, `wrong ELF class`)."""
    built_for = library_machine(path / manifest.library)
    here = this_machine()
    if built_for is not None and built_for != here:
        target = manifest.target.name
        raise ArtifactError(f"`{path}` is built for {built_for} (`--target {target}`), and this machine is {here}: "
                            f"compile it here with `dlc compile --target llvm`, or run it on that "
                            f"machine (`dlc package {path} --platform {built_for}` makes a bundle to copy there)")


def load(path: str | Path) -> CompiledModel:
    """Load the artifact directory written by `dlc compile`, checked first (the module's docstring
    lists the checks); ArtifactError for anything missing, malformed or changed."""
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
        for want, got in zip(shape, array.shape, strict=True):
            if isinstance(want, int) and want != got:
                raise ArtifactError(f"input `{spec['name']}` must have shape {_show(shape)}, got {list(array.shape)}")
            if isinstance(want, str) and bound.setdefault(want, got) != got:
                raise ArtifactError(f"dim `{want}` is {bound[want]} in one input and {got} in `{spec['name']}`")


def _show(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"




# ---- manifest.json, typed -----------------------------------------------------------------------

class _Malformed(Exception):
    """A manifest field of the wrong kind; `load_manifest` says which file."""


_KINDS = {dict: "an object", list: "a list", str: "a string", int: "an integer"}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return next((name for kind, name in _KINDS.items() if isinstance(value, kind)), "a number")


def _typed(value: Any, kind: type, label: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        shown = json.dumps(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise _Malformed(f"`{label}` must be {_KINDS[kind]}, got {_kind_of(value)} {shown}")
    return value


def _field(obj: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    label = f"{where}.{key}" if where else key
    if key not in obj:
        raise _Malformed(f"`{label}` is missing")
    return _typed(obj[key], kind, label)


def _optional(obj: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    return None if obj.get(key) is None else _field(obj, key, kind, where)


def _positive(value: Any, label: str, *, zero: bool = False) -> int:
    if _typed(value, int, label) < (0 if zero else 1):
        raise _Malformed(f"`{label}` must be a {'non-negative' if zero else 'positive'} integer, got {value}")
    return value


def _file_name(obj: dict[str, Any], key: str) -> str:
    """A relative path inside the artifact: what `library` and `weights` may name."""
    name = _field(obj, key, str)
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise _Malformed(f"`{key}` must name a file inside the artifact directory, got `{name}`")
    return name


def _tensor_spec(value: Any, label: str, *, symbolic: bool = True) -> TensorSpec:
    obj = _typed(value, dict, label)
    name, dtype = _field(obj, "name", str, label), _field(obj, "dtype", str, label)
    if not name or not dtype:
        raise _Malformed(f"`{label}` needs a non-empty `name` and `dtype`")
    dims = _field(obj, "shape", list, label)
    return TensorSpec(name, dtype, tuple(_dim(d, f"{label}.shape[{i}]", symbolic) for i, d in enumerate(dims)))


def _dim(dim: Any, label: str, symbolic: bool) -> int | str:
    """A size, or (in an input or output) the name of a symbolic dim."""
    if not isinstance(dim, str):
        return _positive(dim, label, zero=True)
    if symbolic and dim.isidentifier():
        return dim
    raise _Malformed(f"`{label}` must be a size{' or the name of a dim' if symbolic else ''}, got \"{dim}\"")


def _tensor_specs(obj: dict[str, Any], key: str, *, symbolic: bool = True) -> tuple[TensorSpec, ...]:
    specs = tuple(_tensor_spec(v, f"{key}[{i}]", symbolic=symbolic) for i, v in enumerate(_field(obj, key, list)))
    _unique([s.name for s in specs], key)
    return specs


def _unique(names: list[str], key: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _Malformed(f"`{key}` names `{name}` twice")
        seen.add(name)


def _target(obj: dict[str, Any]) -> Target:
    target = _field(obj, "target", dict)
    name = _optional(target, "name", str, "target") or "?"
    device = _optional(target, "device", str, "target") or "cpu"
    if device not in ("cpu", "cuda"):
        raise _Malformed(f"`target.device` must be \"cpu\" or \"cuda\", got \"{device}\"")
    tvm = _optional(target, "tvm", dict, "target") or {}
    cores = tvm.get("num-cores")
    return Target(name, device, None if cores is None else _positive(cores, "target.tvm.num-cores"))


def _hashes(obj: dict[str, Any], files: tuple[str, ...]) -> dict[str, str]:
    hashes = _field(obj, "sha256", dict)
    for file in files:
        if file not in hashes:
            raise _Malformed(f"`sha256` has no entry for `{file}`")
    for file, digest in hashes.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _Malformed(f"`sha256.{file}` must be 64 lowercase hex digits, got {json.dumps(digest)[:40]}")
    return dict(hashes)


def parse_manifest(obj: Any) -> Manifest:
    """The typed manifest of a JSON value; `_Malformed` names the first field that is wrong."""
    if not isinstance(obj, dict):
        raise _Malformed(f"it must hold a JSON object, got {_kind_of(obj)}")
    library, weights = _file_name(obj, "library"), _file_name(obj, "weights")
    params, param_specs = _params(obj)
    transform = _optional(obj, "transform_params", str)
    for dim, size in (_optional(obj, "dims", dict) or {}).items():
        _positive(size, f"dims.{dim}")
    outputs = _tensor_specs(obj, "outputs")
    if not outputs:
        raise _Malformed("`outputs` is empty")
    return Manifest(obj, library, weights, params, param_specs, _tensor_specs(obj, "inputs"), outputs,
                    _target(obj), transform or None, _hashes(obj, (library, weights)))


def _params(obj: dict[str, Any]) -> tuple[tuple[str, ...], tuple[TensorSpec, ...]]:
    """`params` (the weights' names in the order `main` takes them, what the C++ runner reads)
    and `param_specs` (each one's dtype and shape), which must agree."""
    params = tuple(_typed(p, str, f"params[{i}]") for i, p in enumerate(_field(obj, "params", list)))
    _unique(list(params), "params")
    specs = _tensor_specs(obj, "param_specs", symbolic=False)
    if tuple(s.name for s in specs) != params:
        missing = ", ".join(p for p in params if p not in {s.name for s in specs}) or "-"
        extra = ", ".join(s.name for s in specs if s.name not in params) or "-"
        raise _Malformed(f"`params` and `param_specs` must name the same weights in the same order "
                         f"(only in `params`: {missing}; only in `param_specs`: {extra})")
    return params, specs


def load_manifest(path: Path) -> Manifest:
    """`path/manifest.json`, read and checked into a `Manifest`."""
    file = Path(path) / "manifest.json"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(_not_an_artifact(Path(path))) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ArtifactError(f"cannot read `{file}`: {err}") from None
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ArtifactError(f"`{file}` is not valid JSON: {err}") from None
    if isinstance(obj, dict) and obj.get("format") != FORMAT:
        raise ArtifactError(f"`{path}` has format {obj.get('format')!r}, this runtime reads {FORMAT!r}")
    if isinstance(obj, dict) and "sha256" not in obj:
        raise ArtifactError(f"`{file}` records no sha256 of the files beside it: it was written by a dlc older than "
                            f"those checks, so they cannot be verified; recompile it with `dlc compile`")
    try:
        return parse_manifest(obj)
    except _Malformed as err:
        raise ArtifactError(f"`{file}` is malformed: {err}") from None


def read_manifest(path: Path) -> dict[str, Any]:
    """`path/manifest.json` as a dict, checked as `load_manifest` checks it."""
    return load_manifest(path).raw


def previous_artifact(out: Path) -> Path:
    """Where `dlc compile -o OUT` keeps the artifact it replaces while it swaps the new one in."""
    return out.with_name(f".{out.name}.old")


def _not_an_artifact(path: Path) -> str:
    message = f"`{path}` is not a dlc artifact (no manifest.json)"
    old = previous_artifact(path.absolute())
    if not path.exists() and (old / "manifest.json").is_file():
        message += (f"; `{old}` holds the artifact that was there before a `dlc compile -o {path}` was "
                    f"interrupted: the next `dlc compile -o {path}` restores it first (or move it back yourself)")
    return message


# ---- the files it names --------------------------------------------------------------------------

def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(path: Path, manifest: Manifest) -> tuple[Path, dict[str, np.ndarray]]:
    """The library's path and the weights, once both match the manifest (its `sha256`, and the
    weights its `param_specs`); the library is not loaded."""
    library = _artifact_file(path, manifest.library, "library")
    _check_hash(library, manifest.sha256[manifest.library])
    weights_file = _artifact_file(path, manifest.weights, "weights")
    weights = _read_weights(weights_file, manifest.param_specs)
    _check_hash(weights_file, manifest.sha256[manifest.weights])
    return library, weights


def _artifact_file(path: Path, name: str, field: str) -> Path:
    file = path / name
    if not file.resolve().is_relative_to(path.resolve()):
        raise ArtifactError(f"`{file}` leads out of `{path}` (a symlink): the manifest's `{field}` must name a "
                            f"file inside the artifact")
    if not file.exists():
        raise ArtifactError(f"`{file}` is missing (the manifest's `{field}` names it)")
    if not file.is_file():
        raise ArtifactError(f"`{file}` is not a file (the manifest's `{field}` names it)")
    if file.stat().st_size == 0:
        raise ArtifactError(f"`{file}` is empty")
    return file


def _check_hash(file: Path, expected: str) -> None:
    if sha256_of(file) != expected:
        raise ArtifactError(f"`{file}` does not match the manifest's sha256: the file was changed after "
                            f"`dlc compile` wrote it; recompile")


def _read_weights(file: Path, specs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    """The arrays of the .npz, never unpickled, which must be exactly `specs`."""
    with open(file, "rb") as f:
        if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ArtifactError(f"`{file}` is not an .npz archive (it does not start as a zip file does)")
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ArtifactError(f"`{file}` is not a readable .npz archive: {err}") from None
    for spec in specs:
        if spec.name not in arrays:
            raise ArtifactError(f"`{file}` has no array `{spec.name}` (the manifest's `params` names it)")
        array = arrays[spec.name]
        if str(array.dtype) != spec.dtype or array.shape != spec.shape:
            raise ArtifactError(f"`{file}` holds `{spec.name}` as {array.dtype}{_show(array.shape)}, "
                                f"the manifest says {spec.describe()}")
    extra = sorted(set(arrays) - {s.name for s in specs})
    if extra:
        raise ArtifactError(f"`{file}` holds `{extra[0]}`, which the manifest's `params` does not name")
    return arrays


def _contiguous(array: np.ndarray) -> np.ndarray:
    """`array` C-contiguous; a 0-d array stays 0-d (np.ascontiguousarray returns at least 1-d, and a
    scalar weight such as `relu6`'s bound would then be refused by `main_transform_params`)."""
    return array if array.flags.c_contiguous else array.copy(order="C")
