"""The ONNX converter table: op name -> converter, one per op (TVM's `_get_convert_map` pattern).

Converters live by family in `onnx_ops_dense.py` and `onnx_ops_seq.py`.
"""
from __future__ import annotations

from .builder import Converter
from .ops_dense import CONVERTERS as DENSE
from .ops_seq import CONVERTERS as SEQ

ONNX: dict[str, Converter] = {**DENSE, **SEQ, "expect": lambda ctx: list(ctx.inputs)}
