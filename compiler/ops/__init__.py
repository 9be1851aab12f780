"""The op table; importing this package registers every op family."""
from . import activation, conv, norm, pool, sequence, tensor  # noqa: F401  (registration side effects)
from .table import OPS, ArgError, OpDef, Param, ShapeError

__all__ = ["OPS", "ArgError", "OpDef", "Param", "ShapeError"]
