"""Tensor types: a dtype and a shape of symbolic dims."""
from __future__ import annotations

from dataclasses import dataclass

from .dims import Dim, Shape, numel, shape_str

DTYPE_BYTES = {"f32": 4, "f64": 8, "f16": 2, "bf16": 2, "i64": 8, "i32": 4, "u8": 1, "bool": 1}
FLOAT_DTYPES = ("f32", "f64", "f16", "bf16")
INT_DTYPES = ("i64", "i32", "u8")


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: str
    shape: Shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape: Shape) -> TensorType:
        return TensorType(self.dtype, tuple(Dim.of(d) for d in shape))

    def numel(self) -> Dim:
        return numel(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{shape_str(self.shape)}"
