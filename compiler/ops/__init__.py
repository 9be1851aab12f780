"""The op table; importing this package registers every op family (see table.py)."""
from . import (activation, attention, combine, conv, dense, embedding, generative, indexing, internal,  # noqa: F401
               loss, norm, pool, recurrent, shape)
from .table import OPS, ArgError, OpDef, Param, ShapeError

__all__ = ["OPS", "ArgError", "OpDef", "Param", "ShapeError"]
