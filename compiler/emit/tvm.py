"""TVM backend: the ONNX emitter's graph, imported with Relax's ONNX frontend, built for a target.

Assumes: a typed graph and its weights. Guarantees: a deployable artifact directory holding
`model.so` (the Relax VM executable; weights are not baked in), `weights.npz` (the weights in
the order `main` takes them, by their compiler names) and `manifest.json` (inputs and outputs
with symbolic shapes and dtypes, the spec's content hash, the target, TVM's version). The
directory appears whole or not at all.

Why through ONNX: the ONNX emitter already fixes every op's inference semantics and is
cross-checked against PyTorch and ONNX Runtime; Relax's ONNX importer is TVM's most complete
frontend. Ops that importer lacks (LSTM, GRU) are reported as diagnostics, not crashes.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import messages
from ..ir.graph import Graph
from .onnx import emit_onnx
from .torch_text import EmitError

ARTIFACT_FORMAT = "dlc-artifact/1"
TARGET_NAMES = ("llvm", "cuda", "aarch64")


@dataclass(frozen=True)
class TargetSpec:
    """A named target resolved to TVM target JSON, plus how to link the library."""

    name: str
    target: dict[str, Any]
    host: dict[str, Any] | None = None
    cc: str | None = None  # cross compiler for export_library
    device: str = "cpu"  # what the runtime runs it on


def resolve_target(name: str, arch: str | None = None, target_json: str | None = None) -> TargetSpec:
    """`llvm` (this CPU, detected), `cuda` (`--arch sm_90`), `aarch64` (Linux, cross-built), or JSON."""
    from tvm.target import codegen

    if target_json is not None:
        target = json.loads(target_json)
        return TargetSpec(target.get("kind", "custom"), target, device="cuda" if target.get("kind") == "cuda" else "cpu")
    if name == "llvm":
        return TargetSpec("llvm", {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu()})
    if name == "cuda":
        return TargetSpec("cuda", {"kind": "cuda", "arch": arch or "sm_90"}, host={"kind": "llvm"}, device="cuda")
    if name == "aarch64":
        return TargetSpec("aarch64", {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]},
                          cc="aarch64-linux-gnu-g++")
    raise ValueError(f"unknown target `{name}`; targets: {', '.join(TARGET_NAMES)}, or --target-json")


@dataclass
class Built:
    executable: Any  # tvm.relax.VMExecutable
    params: list[tuple[str, np.ndarray]]
    manifest: dict[str, Any]
    cuda_source: str | None = None  # the kernels, for CUDA targets


def _cuda_source(executable) -> str | None:
    """The CUDA C of the kernels (TVM's PyPI wheel keeps them as source inside the library)."""
    stack = [executable.mod]
    while stack:
        module = stack.pop()
        if getattr(module, "kind", None) == "cuda":
            return module.inspect_source("")
        stack.extend(module.imports)
    return None


def check_cuda_source(source: str | None, arch: str) -> dict[str, Any]:
    """Compile the kernels with nvcc to a cubin, so a CUDA build is known to be real without a GPU."""
    import subprocess

    if source is None:
        return {"kernels": None, "nvcc": "no CUDA kernels"}
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return {"kernels": "kernels.cu", "nvcc": "not checked (nvcc not found)"}
    with tempfile.TemporaryDirectory() as tmp:
        cu = Path(tmp) / "kernels.cu"
        cu.write_text(source)
        proc = subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-o", str(cu.with_suffix(".cubin")), str(cu)],
                              capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"nvcc rejected the generated CUDA kernels:\n{proc.stderr[-2000:]}")
    return {"kernels": "kernels.cu", "nvcc": f"compiled to a {arch} cubin"}


def build(graph: Graph, weights: Mapping[str, np.ndarray], spec: TargetSpec, spec_hash: str, spec_path: str) -> Built:
    """Import the graph into Relax and build it for `spec` (untuned: TVM's default schedules)."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend import detach_params
    from tvm.relax.frontend.onnx import from_onnx

    model = emit_onnx(graph, weights)
    try:
        mod = from_onnx(model, keep_params_in_input=True)
    except tvm.error.OpNotImplemented as err:
        raise EmitError(messages.no_tvm_form(graph.span, graph.name, str(err).strip())) from None
    mod, params = detach_params(mod)
    names = _param_names(mod, model)
    target = tvm.target.Target(spec.target, host=spec.host) if spec.host else tvm.target.Target(spec.target)
    with target:
        mod = relax.get_pipeline("zero")(mod)
        if spec.device == "cuda":
            mod = _gpu_schedules(mod)
    executable = tvm.compile(mod, target=target)
    arrays = [(n, p.numpy()) for n, p in zip(names, params.get("main", []))]
    built = Built(executable, arrays, _manifest(graph, spec, spec_hash, spec_path))
    if spec.device == "cuda":
        built.cuda_source = _cuda_source(executable)
        built.manifest["cuda"] = check_cuda_source(built.cuda_source, spec.target.get("arch", "sm_90"))
    return built


def _gpu_schedules(mod):
    import tvm.s_tir.dlight as dl

    return dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
                                   dl.gpu.Fallback())(mod)


def _param_names(mod, model) -> list[str]:
    """The compiler's names of `main`'s weight parameters (Relax sanitizes `layer1.0.w` to `layer1_0_w`)."""
    by_sanitized = {re.sub(r"\W", "_", t.name): t.name for t in model.graph.initializer}
    n_inputs = len(model.graph.input)
    return [by_sanitized.get(str(v), str(v)) for v in list(mod["main"].params)[n_inputs:]]


def _manifest(graph: Graph, spec: TargetSpec, spec_hash: str, spec_path: str) -> dict[str, Any]:
    import tvm

    def tensor(name: str, vid: int) -> dict[str, Any]:
        t = graph.values[vid].type
        return {"name": name, "dtype": _NUMPY_DTYPES[t.dtype],
                "shape": [d.value if d.is_const else str(d) for d in t.shape]}

    return {
        "format": ARTIFACT_FORMAT,
        "model": graph.name,
        "spec": spec_path,
        "spec_sha256": spec_hash,
        "target": {"name": spec.name, "tvm": spec.target, "host": spec.host, "device": spec.device},
        "tvm_version": tvm.__version__,
        "inputs": [tensor(n, v) for n, v in graph.inputs],
        "outputs": [tensor(n, v) for n, v in graph.outputs],
        "dims": dict(graph.dim_examples),
        "tuning": {"trials": 0, "tasks": 0, "note": "untuned: TVM's default schedules"},
        "library": "model.so",
        "weights": "weights.npz",
    }


_NUMPY_DTYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "bf16": "bfloat16", "i64": "int64",
                 "i32": "int32", "u8": "uint8", "bool": "bool"}


def write_artifact(built: Built, spec: TargetSpec, out: Path) -> None:
    """Write the artifact into a temporary directory beside `out`, then move it into place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        kwargs = {"cc": spec.cc} if spec.cc else {}
        built.executable.export_library(str(tmp / "model.so"), **kwargs)
        np.savez(tmp / "weights.npz", **dict(built.params))
        if built.cuda_source is not None:
            (tmp / "kernels.cu").write_text(built.cuda_source)
        built.manifest["params"] = [n for n, _ in built.params]
        (tmp / "manifest.json").write_text(json.dumps(built.manifest, indent=2) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
