"""dlc: a declarative deep-learning model compiler.

The compiler lives in `dlc.compiler` (the repository's `compiler/`), the runtime in
`dlc.runtime` (`runtime/`). This package holds the public API and the `dlc` command; its
names load lazily, so that `import dlc.runtime` on a device pulls in neither the compiler
nor torch.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["CompileError", "compile_file", "compile_network", "torch_module", "torch_source"]


def torch_module(spec, model=None, **params):
    """An `nn.Module` built from the generated PyTorch source of `spec` (imports torch)."""
    from dlc.compiler.emit.torch import torch_module as build

    return build(spec, model, **params)


def torch_source(spec):
    """The generated PyTorch source of every network in `spec`, as `dlc emit torch` writes it."""
    from dlc.compiler.emit.torch import torch_source as emit

    return emit(spec)


def __getattr__(name: str) -> Any:
    if name == "CompileError":
        from dlc.compiler.diagnostics import CompileError

        return CompileError
    if name in ("compile_file", "compile_network"):
        from dlc.compiler import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'dlc' has no attribute {name!r}")
