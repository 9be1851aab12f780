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
    source = torch_source(spec)
    name = f"dlc_generated.{Path(spec).stem}"
    module = types.ModuleType(name)
    module.__file__ = f"<dlc:{spec}>"
    sys.modules[name] = module  # so that classes pickle and torch.export can find their module
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own generated code
    return module


def torch_module(spec: str | Path, model: str | None = None, **params: Any):
    """An `nn.Module` for `model` (default: the file's last network), built with `params`."""
    result = compile_file(spec, model)
    result.raise_for_errors()
    graph = default_graph(result, model)
    namespace = torch_namespace(spec)
    return getattr(namespace, graph.name)(**params)
