"""Build PyTorch modules in memory from a spec, without writing files."""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from ...diagnostics import CompileError
from ...errors import EmitError
from ...pipeline import compile_file, default_graph
from .file import emit_torch


def torch_source(spec: str | Path, standalone: bool = False) -> str:
    """The generated PyTorch source for every network of `spec`; with `standalone`, the helper
    layers are copied in instead of imported from dlc.runtime.layers. Raises CompileError, whose
    text is the located diagnostic, for a spec with errors and for what the emitter refuses."""
    result = compile_file(spec)
    try:
        return emit_torch(result, standalone)
    except EmitError as err:
        raise CompileError([err.diag], result.sources) from None


def torch_namespace(spec: str | Path) -> types.ModuleType:
    """The generated source executed as a module: its classes are the spec's networks and blocks."""
    return _execute(torch_source(spec), spec)


def _execute(source: str, spec: str | Path) -> types.ModuleType:
    name = f"dlc_generated.{Path(spec).stem}"
    module = types.ModuleType(name)
    module.__file__ = f"<dlc:{spec}>"
    sys.modules[name] = module  # so that classes pickle and torch.export can find their module
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own generated code
    return module


def torch_module(spec: str | Path, model: str | None = None, **params: Any):
    """An `nn.Module` for `model` (default: the file's last network), built with `params`.

    The spec is compiled with those parameters and the module is checked against that IR: every
    state_dict key and shape is the compiler's weight (or a tie alias of one), so a module that
    disagrees with the IR is refused (CompileError, E0601), never returned."""
    result = compile_file(spec, model, params=params or None)
    result.raise_for_errors()
    graph = default_graph(result, model)
    try:
        namespace = _execute(emit_torch(result), spec)
    except EmitError as err:
        raise CompileError([err.diag], result.sources) from None
    module = getattr(namespace, graph.name)(**params)
    _check_weights(module, graph, result)
    return module


def _check_weights(module, graph, result) -> None:
    from ... import messages
    from ...checkpoint import tie_aliases

    expected = {w.name: tuple(w.shape) for w in graph.weights}
    aliases = tie_aliases(graph)
    got = {k: tuple(v.shape) for k, v in module.state_dict().items() if k not in aliases}
    if got != expected:
        wrong = sorted(set(got.items()) ^ set(expected.items()))[:4]
        what = "a module whose weights disagree with the compiled graph: " + ", ".join(
            f"`{k}` {list(s)}" for k, s in wrong)
        raise CompileError([messages.emit_unsupported(graph.span, what)], result.sources)
