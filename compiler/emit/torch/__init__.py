"""The PyTorch emitter: one readable `nn.Module` class per network and per block it uses.

    file.py       the whole file: which defs become classes, in what order, the template
    classes.py    one class from one def, generalized over the def's instances
    instances.py  where each def was expanded (what the classes generalize from)
    text.py       the class record, line buffers and weight-init functions
    forms.py      the vocabulary each op's PyTorch form is written in
    pysource.py   spec expressions as Python source
    api.py        `torch_source`, `torch_module`: the emitted source in memory

Each op's PyTorch form (its module, call and output-size source) is the `torch` field of its
`OpDef`, beside its shape rule in compiler/ops/<family>.py.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["emit_torch", "torch_module", "torch_namespace", "torch_source"]
_HOME = {"emit_torch": "file", "torch_module": "api", "torch_namespace": "api", "torch_source": "api"}


def __getattr__(name: str) -> Any:
    """The entry points, imported on first use: the op table imports `forms` from this package,
    and the front end must load without Jinja2 and black."""
    if name in _HOME:
        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
