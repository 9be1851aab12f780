"""The op table; importing this package registers every op family (see table.py)."""
from . import (activation, attention, combine, conv, dense, embedding, generative, indexing, internal,  # noqa: F401
               loss, metric_learning, norm, pool, recurrent, shape)
from . import segmentation  # noqa: F401
from . import gradient  # noqa: F401  (grad, sign, norm, ...: compiler/ops/gradient.py)
from .table import OPS, ArgError, OpDef, Param, ShapeError, spec_op

__all__ = ["OPS", "ArgError", "OpDef", "Param", "ShapeError", "spec_op"]
