"""The PyTorch emitter: one readable `nn.Module` class per network and per block it uses.

    file.py       the whole file: which defs become classes, in what order, the template
    classes.py    one class from one def, generalized over the def's instances
    instances.py  where each def was expanded (what the classes generalize from)
    text.py       the class record, line buffers and weight-init functions
    forms.py      the vocabulary each op's PyTorch form is written in
    pysource.py   spec expressions as Python source
    api.py        `torch_source`, `torch_module`: the emitted source in memory
"""
from .api import torch_module, torch_namespace, torch_source
from .file import emit_torch

__all__ = ["emit_torch", "torch_module", "torch_namespace", "torch_source"]
