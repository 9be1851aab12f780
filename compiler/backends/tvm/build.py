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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ... import messages
from ...emit.onnx import build_onnx
from ...errors import EmitError
from ...ir.graph import Graph
from .artifact import manifest
from .fold import fold_batchnorm_arrays
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
    # `--winograd`: wide 3x3 convs as Winograd on CPU targets (winograd.py). Off by default: its
    # transforms multiply by zeros and mix terms that cancel only in exact arithmetic, so a NaN or
    # Inf input makes whole output tiles NaN, not only the outputs that depend on it
    winograd: bool = False
    minutes: float | None = None  # `--tune-minutes`: the search's wall-clock limit (None: the trials alone)


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
    mod = prepare(mod, target, winograd=tuning is not None and tuning.winograd)
    database, report = None, None
    if tuning is not None:
        from . import tune as tvm_tune

        report, database = tvm_tune.tune(mod, target, tuning.db_dir, tuning.trials, stream=tuning.progress,
                                           remote=tuning.remote, minutes=tuning.minutes)
    executable = lower(mod, target, database)
    built = Built(executable, arrays, manifest(graph, spec, spec_hash, spec_path, dims))
    if any(gv.name_hint == TRANSFORM_PARAMS for gv in mod.functions):
        built.manifest["transform_params"] = TRANSFORM_PARAMS
    if report is not None:
        built.manifest["tuning"] = {**report.as_manifest(), "winograd": tuning.winograd}
        built.tuning = report
    if spec.device == "cuda":
        built.cuda_source = _cuda_source(executable)
        built.manifest["cuda"] = check_cuda_source(built.cuda_source, spec.target.get("arch", "sm_90"))
    return built


MOVED_MIN_BYTES = 4096  # import_graph: float tensors this large reach TVM as inputs, not initializers


def import_graph(graph: Graph, weights: Mapping[str, np.ndarray], dims: Mapping[str, int] | None = None):
    """The graph as a Relax module whose `main` takes the inputs, then the weights (`num_input`
    set), and the weights in that order by their compiler names. `dims` makes those dims static.

    TVM's ONNX importer is given the graph without its large weights: each float tensor of at
    least `MOVED_MIN_BYTES` is a graph input of its shape and dtype (what `keep_params_in_input=True`
    makes of an initializer anyway), its array `weights`' own (or a new one where a batch norm was
    folded). Small constants stay initializers: the importer reads shapes, axes and scales from
    them. With every tensor an initializer the importer serialized the whole model for
    onnx.checker and copied every tensor twice (numpy, then a TVM array): VGG-16's import peaked
    at 2.6 GB for 553 MB of weights, 1.0 GB now.
    """
    import tvm
    from onnx import helper, numpy_helper
    from tvm.relax.frontend import detach_params
    from tvm.relax.frontend.onnx import from_onnx

    model = fold_batchnorm_arrays(build_onnx(graph, weights))
    proto = model.proto
    moved, kept = [], []
    for name, array in model.arrays.items():
        large = array.dtype.kind == "f" and array.nbytes >= MOVED_MIN_BYTES
        (moved if large else kept).append((name, np.require(array, requirements="C")))  # 0-d stays 0-d
    shapes_in_order = [(a.shape, str(a.dtype)) for _, a in moved + kept]
    del model
    n_inputs = len(proto.graph.input)
    for name, array in moved:
        proto.graph.input.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype),
                                                               list(array.shape)))
    proto.graph.initializer.extend(numpy_helper.from_array(array, name) for name, array in kept)
    shapes = None
    if dims is not None:
        shapes = {name: [d.evaluate(dims) for d in graph.values[vid].type.shape] for name, vid in graph.inputs}
    try:
        with warnings.catch_warnings():  # "Renaming name layer1.0.weight to layer1_0_weight": expected
            warnings.filterwarnings("ignore", message="Renaming name")
            mod = from_onnx(proto, shape_dict=shapes, keep_params_in_input=True)
    except tvm.error.OpNotImplemented as err:
        raise EmitError(messages.no_tvm_form(graph.span, graph.name, str(err).strip())) from None
    mod, params = detach_params(mod)  # the kept initializers' values, in their order after the graph inputs
    arrays = moved + [(name, p.numpy()) for (name, _), p in zip(kept, params.get("main", []), strict=True)]
    main = mod["main"]
    found = [(tuple(int(d) for d in v.ty.shape), str(v.ty.dtype)) for v in list(main.params)[n_inputs:]]
    if found != shapes_in_order or [(a.shape, str(a.dtype)) for _, a in arrays] != shapes_in_order:
        raise RuntimeError(f"TVM's ONNX importer did not keep the weights of {graph.name} in order")
    mod["main"] = main.with_attr("num_input", n_inputs)
    return mod, arrays


def prepare(mod, target, winograd: bool = False):
    """Remaining batch norms (those `fold_batchnorm` could not fold into a conv) decomposed into
    arithmetic, ops legalized to TIR (with `winograd`, on CPUs, wide 3x3 convs as Winograd:
    winograd.py) with IEEE max and min (`ieee_min_max`), weight-only work lifted out of `main`, and fused.

    Winograd is off unless asked for: it is faster, but a NaN or Inf input makes whole output
    tiles NaN where the direct conv, like PyTorch, makes NaN only the outputs that depend on it.

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
    if winograd and target.kind.name == "llvm":
        from .winograd import legalize_conv2d

        rules["relax.nn.conv2d"] = legalize_conv2d
    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(), *dispatch,
              relax.transform.LegalizeOps(customize_legalize_map=rules),
              ieee_min_max(reductions=target.kind.name == "llvm"),
              # weight-only work moves to `main_transform_params`, run once when the artifact loads
              relax.transform.LiftTransformParams(), relax.transform.AnnotateTIROpPattern(),
              relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR(),
              relax.transform.DeadCodeElimination()]
    with target, tvm.transform.PassContext(opt_level=3):
        if target.kind.name == "llvm":
            from .cpu_schedules import pad_matmul_columns

            mod = pad_matmul_columns(mod, target)
        return tvm.transform.Sequential(passes)(mod)


def ieee_min_max(reductions: bool = True):
    """A pass over freshly legalized PrimFuncs: float `max`/`min` that propagate NaN, and max/min
    reductions that start from -inf/+inf, as in PyTorch and IEEE 754-2019 `maximum`/`minimum`.

    TIR's `max(a, b)` is emitted as `a > b ? a : b` (LLVM: `fcmp ogt` + `select`; CUDA: `max`,
    i.e. `fmaxf`), so `relu(NaN) = max(NaN, 0)` gave 0, a max pool skipped a NaN unless it came
    last, and one NaN pixel gave finite logits. TOPI's max reductions and pool padding start from
    the most negative finite float, so a window of -inf gave -3.4e38. Assumes one op per PrimFunc
    (it runs right after `LegalizeOps`, before fusion): there, that constant is only a
    reduction's start and a pool's padding. A second compare is added only where neither operand
    is a constant (`relu` keeps one).

    `reductions=False` leaves reductions (their combiner and start) as TOPI wrote them: GPU
    schedules split a reduction across threads only for a combiner and start TVM recognizes.
    """
    import tvm

    @tvm.tirx.transform.prim_func_pass(opt_level=0, name="IEEEMinMax")
    def rewrite(func, _mod, _ctx):
        import tvm_ffi
        from tvm import tirx

        combiners = _reduction_combiners(func)
        if reductions:
            for reduce_op, bound in ((tirx.Max, tirx.min_value), (tirx.Min, tirx.max_value)):
                if any(isinstance(c, reduce_op) and _starts_at(b, bound) for b, c in combiners):
                    func = tvm_ffi.structural_map(func, [(tirx.FloatImm, lambda c, b=bound: _to_infinity(c, b))])
            combiners = []
        kept = [c for _, c in combiners]

        def nan_max(e):
            return e if any(e.same_as(c) for c in kept) else _nan_select(e, lambda a, b: a > b)

        def nan_min(e):
            return e if any(e.same_as(c) for c in kept) else _nan_select(e, lambda a, b: a < b)

        return tvm_ffi.structural_map(func, [(tirx.Max, nan_max), (tirx.Min, nan_min)])

    return rewrite


def _nan_select(e, wins):
    """`max`/`min` as `select(wins(a, b) or isnan(a), a, b)`: a NaN on either side is the result.
    A constant (never NaN) goes first, where `wins` alone suffices: `relu` is `0 > x ? 0 : x`."""
    from tvm import tirx

    if not e.ty.dtype.is_float:
        return e
    a, b = (e.b, e.a) if _is_number(e.b) else (e.a, e.b)
    keep_a = wins(a, b) if _is_number(a) else tirx.Or(wins(a, b), tirx.isnan(a))
    return tirx.Select(keep_a, a, b)


def _is_number(e) -> bool:
    """A constant that is not NaN (scalar or broadcast)."""
    import math

    from tvm import tirx

    if isinstance(e, tirx.Broadcast):
        return _is_number(e.value)
    return isinstance(e, (tirx.FloatImm, tirx.IntImm)) and not math.isnan(e.value)


def _reduction_combiners(func) -> list:
    """(block, combined value) of each reduction block of `func` (one with an init) that stores one value."""
    import tvm_ffi
    from tvm import s_tir, tirx

    found = []

    def visit(block):
        if isinstance(block.init, tirx.BufferStore) and isinstance(block.body, tirx.BufferStore):
            found.append((block, block.body.value))

    tvm_ffi.structural_walk(func, [(s_tir.SBlock, visit)])
    return found


def _starts_at(block, bound) -> bool:
    """Whether the reduction `block` starts from the finite `bound` (lowest or highest) of its dtype."""
    from tvm import tirx

    start = block.init.value
    return isinstance(start, tirx.FloatImm) and start.value == bound(str(start.ty)).value


def _to_infinity(c, bound):
    """The finite `bound` (lowest or highest float) as the infinity on its side; other constants as they are."""
    from tvm import tirx

    if not c.ty.dtype.is_float or c.value != bound(str(c.ty)).value:
        return c
    return tirx.FloatImm(str(c.ty), float("-inf") if c.value < 0 else float("inf"))


def lower(mod, target, database=None):
    """Apply the tuning records (if any), the default schedules for what they leave (GPU: dlight's;
    CPU: cpu_schedules.py's matmul rule), and the target's lowering passes."""
    import importlib

    import tvm
    from tvm import relax

    from . import cpu_schedules

    gpu = target.kind.name == "cuda"
    backend = importlib.import_module(f"tvm.relax.backend.{'cuda' if gpu else 'cpu_generic'}.pipeline")

    @tvm.transform.module_pass(opt_level=3)
    def pipeline(mod, _ctx):
        if database is not None:
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        mod = _gpu_schedules(mod) if gpu else cpu_schedules.apply_default_schedules(mod, target)
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


