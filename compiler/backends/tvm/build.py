"""TVM backend: the ONNX emitter's graph, imported with Relax's ONNX frontend, built for a target.

Assumes: a typed graph and its weights. Guarantees: a `Built` holding the Relax VM executable
(weights are not baked in), the weights in the order `main` takes them (by their compiler
names) and the manifest that `artifact.write_artifact` writes beside them. With `Tuning`,
MetaSchedule tunes the prepared module first (tune.py) and the build applies its database.

Why through ONNX: the ONNX emitter already fixes every op's inference semantics and is
cross-checked against PyTorch and ONNX Runtime; Relax's ONNX importer is TVM's most complete
frontend. Ops that importer lacks (LSTM, GRU) are reported as diagnostics, not crashes.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ... import messages
from ...emit.onnx import emit_onnx
from ...errors import EmitError
from ...ir.graph import Graph
from .artifact import manifest
from .fold import fold_batchnorm
from .targets import TargetSpec

TRANSFORM_PARAMS = "main_transform_params"  # weight-only work, run once by the runtime at load


@dataclass
class Built:
    executable: Any  # tvm.relax.VMExecutable
    params: list[tuple[str, np.ndarray]]
    manifest: dict[str, Any]
    cuda_source: str | None = None  # the kernels, for CUDA targets
    tuning: Any = None  # tune.TuneReport of a tuned build


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


@dataclass(frozen=True)
class Tuning:
    """`--tune N`: MetaSchedule trials for the whole model, and where its records persist."""

    trials: int
    db_dir: Path
    progress: Any = None  # a text stream for the progress line, or None
    remote: Any = None  # remote.Remote: measure on that device over TVM RPC; None: on this machine


def build(graph: Graph, weights: Mapping[str, np.ndarray], spec: TargetSpec, spec_hash: str, spec_path: str,
          tuning: Tuning | None = None, dims: Mapping[str, int] | None = None) -> Built:
    """Import the graph into Relax, tune it if asked, and build it for `spec`.

    `dims` binds symbolic dims (a tuned build needs every input dim bound: schedules are tuned for
    static shapes; without `dims` it takes the spec's examples, e.g. batch 1).
    """
    import tvm

    if tuning is not None and dims is None:
        dims = dict(graph.dim_examples)
    mod, arrays = import_graph(graph, weights, dims)
    target = tvm.target.Target(spec.target, host=spec.host) if spec.host else tvm.target.Target(spec.target)
    mod = prepare(mod, target)
    database, report = None, None
    if tuning is not None:
        from . import tune as tvm_tune

        report, database = tvm_tune.tune(mod, target, tuning.db_dir, tuning.trials, stream=tuning.progress,
                                           remote=tuning.remote)
    executable = lower(mod, target, database)
    built = Built(executable, arrays, manifest(graph, spec, spec_hash, spec_path, dims))
    if any(gv.name_hint == TRANSFORM_PARAMS for gv in mod.functions):
        built.manifest["transform_params"] = TRANSFORM_PARAMS
    if report is not None:
        built.manifest["tuning"] = report.as_manifest()
        built.tuning = report
    if spec.device == "cuda":
        built.cuda_source = _cuda_source(executable)
        built.manifest["cuda"] = check_cuda_source(built.cuda_source, spec.target.get("arch", "sm_90"))
    return built


def import_graph(graph: Graph, weights: Mapping[str, np.ndarray], dims: Mapping[str, int] | None = None):
    """The graph as a Relax module whose `main` takes the inputs, then the weights (`num_input`
    set), and the weights in that order by their compiler names. `dims` makes those dims static."""
    import tvm
    from tvm.relax.frontend import detach_params
    from tvm.relax.frontend.onnx import from_onnx

    model = fold_batchnorm(emit_onnx(graph, weights))
    shapes = None
    if dims is not None:
        shapes = {name: [d.evaluate(dims) for d in graph.values[vid].type.shape] for name, vid in graph.inputs}
    try:
        mod = from_onnx(model, shape_dict=shapes, keep_params_in_input=True)
    except tvm.error.OpNotImplemented as err:
        raise EmitError(messages.no_tvm_form(graph.span, graph.name, str(err).strip())) from None
    mod, params = detach_params(mod)
    return mod, [(n, p.numpy()) for n, p in zip(_param_names(mod, model), params.get("main", []))]


def prepare(mod, target):
    """Remaining batch norms (those `fold_batchnorm` could not fold into a conv) decomposed into
    arithmetic, ops legalized to TIR (on CPUs, wide 3x3 convs as Winograd: winograd.py),
    weight-only work lifted out of `main`, and fused.

    Tuning extracts its tasks from this form and the build applies the records to it, so both
    must see exactly this module (params stay inputs: a database tuned with bound weights does
    not match functions that take them as arguments).
    """
    import tvm
    from tvm import relax

    try:
        dispatch = relax.pipeline.library_dispatch_passes(target)
    except (ValueError, AttributeError):
        dispatch = []
    rules = {}
    if target.kind.name == "llvm":
        from .winograd import legalize_conv2d

        rules["relax.nn.conv2d"] = legalize_conv2d
    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(), *dispatch,
              relax.transform.LegalizeOps(customize_legalize_map=rules),
              # weight-only work moves to `main_transform_params`, run once when the artifact loads
              relax.transform.LiftTransformParams(), relax.transform.AnnotateTIROpPattern(),
              relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR(),
              relax.transform.DeadCodeElimination()]
    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(passes)(mod)


def lower(mod, target, database=None):
    """Apply the tuning records (if any), GPU default schedules, and the target's lowering passes."""
    import importlib

    import tvm
    from tvm import relax

    gpu = target.kind.name == "cuda"
    backend = importlib.import_module(f"tvm.relax.backend.{'cuda' if gpu else 'cpu_generic'}.pipeline")

    @tvm.transform.module_pass(opt_level=3)
    def pipeline(mod, _ctx):
        if database is not None:
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        if gpu:
            mod = _gpu_schedules(mod)
        # relax.pipeline.dataflow_lower_passes raises AttributeError in TVM 0.27: take the backend's
        return tvm.transform.Sequential(backend.dataflow_lower_passes(target) + backend.finalize_passes(target))(mod)

    with contextlib.ExitStack() as stack:
        stack.enter_context(target)
        if database is not None:
            stack.enter_context(database)
        stack.enter_context(tvm.transform.PassContext(opt_level=3))
        return relax.build(mod, target=target, relax_pipeline=pipeline)


def _gpu_schedules(mod):
    import tvm.s_tir.dlight as dl

    return dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
                                   dl.gpu.Fallback())(mod)


def _param_names(mod, model) -> list[str]:
    """The compiler's names of `main`'s weight parameters (Relax sanitizes `layer1.0.w` to `layer1_0_w`)."""
    by_sanitized = {re.sub(r"\W", "_", t.name): t.name for t in model.graph.initializer}
    n_inputs = len(model.graph.input)
    return [by_sanitized.get(str(v), str(v)) for v in list(mod["main"].params)[n_inputs:]]


