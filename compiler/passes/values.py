"""The values block expansion works with: tensors, layer values, scopes, and the poison
that stands in for anything whose computation already failed."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ..ir.graph import Frame
from ..ops import OpDef
from ..source import Span
from .resolve import DefRef

class _Poison:
    """Stands in for a tensor or value whose computation already failed."""

    def __repr__(self) -> str:
        return "POISON"


POISON = _Poison()
_uid = itertools.count()


@dataclass(frozen=True)
class Tensor:
    vid: int


@dataclass(frozen=True, eq=False)
class Layer:
    """An op or def with bound arguments. Applying the same Layer again shares its weights."""

    target: OpDef | DefRef
    bound: tuple[tuple[str, Any], ...]  # op attrs, or def params, by name
    tie: Any  # a Layer whose `weight` this one reuses, or None
    span: Span
    uid: int = field(default_factory=lambda: next(_uid))

    @property
    def name(self) -> str:
        return self.target.name


@dataclass
class Scope:
    path: str  # prefix of node paths
    weights: str  # prefix of weight names (differs from `path` inside a shared block's reuse)
    module: str
    env: dict[str, Any]
    trace: tuple[Frame, ...]
    counter: int = 0
    labels: set[str] = field(default_factory=set)
    outputs: list[tuple[str, Any]] = field(default_factory=list)
    inputs: list[Any] | None = None  # tensors flowing into a block instance

    def child(self, name: str, weights: str) -> tuple[str, str]:
        return join(self.path, name), join(self.weights, name)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Fail(Exception):
    """Unwinds an expression or stage whose error has already been reported."""


class Abort(Fail):
    """Unwinds a whole block instance (a failed `assert`): its later statements would only cascade."""


