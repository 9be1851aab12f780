"""The thin AST: one small frozen dataclass per grammar rule, each with its source span.

It mirrors the text and nothing more; meaning (what a name refers to, what a block
expands to, what shape a tensor has) is decided by the passes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, Union

from ..source import Span

if TYPE_CHECKING:
    from .visitor import StmtVisitor

T = TypeVar("T")

# --- expressions (compile-time values) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: int | float | str | bool | None
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * / // % **  == != < <= > >=  and or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class UnaryOp:
    op: str  # - not
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    func: Expr
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Index:
    obj: Expr
    index: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    obj: Expr
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class IfExpr:
    """A conditional expression, `then if cond else orelse`: only the branch taken is evaluated."""

    cond: Expr
    then: Expr
    orelse: Expr
    span: Span


Expr = Union[Literal, Name, ListExpr, BinOp, UnaryOp, Call, Index, Attr, IfExpr]


@dataclass(frozen=True, slots=True)
class Arg:
    name: str | None  # None for a positional argument
    value: Expr
    span: Span


# --- tensor types -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DimExample:
    """A symbolic dimension with the size used for reports: `H=224`."""

    name: str
    example: int
    span: Span


@dataclass(frozen=True, slots=True)
class TensorTypeExpr:
    dtype: str | None
    dims: tuple[Expr | DimExample, ...]
    span: Span


# --- chains -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a chain: `label: callee(args) * repeat`.

    A numbered label (`denselayer{i + 1}`) is `label` as written, for messages, and its pieces in
    `label_parts`: name fragments and the expressions in braces, evaluated where the stage runs."""

    label: str | None
    callee: tuple[str, ...]  # qualified name, e.g. ("std", "Residual")
    args: tuple[Arg, ...] | None  # None when written without parentheses
    repeat: Expr | None
    span: Span
    callee_span: Span
    label_parts: tuple[str | Expr, ...] = ()  # empty for a plain label


@dataclass(frozen=True, slots=True)
class Chain:
    sources: tuple[Name, ...]
    stages: tuple[Stage, ...]
    span: Span


# --- statements -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    type: TensorTypeExpr | None
    span: Span

    def accept(self, visitor: StmtVisitor[T]) -> T:
        return visitor.visit_input(self)


@dataclass(frozen=True, slots=True)
class ParamTensor:
    """`param cls_token: f32[1, 1, d] = zeros`: a learned tensor of its own, named like a label.

    `init` is as written (`zeros`, `normal(std=0.02)`, a number); None means zeros."""

    name: str
    type: TensorTypeExpr
    init: Expr | None
    span: Span

    def accept(self, visitor: StmtVisitor[T]) -> T:
        return visitor.visit_param_tensor(self)


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    chain: Chain | None
    span: Span

    def accept(self, visitor: StmtVisitor[T]) -> T:
        return visitor.visit_output(self)


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    value: Expr
    span: Span

    def accept(self, visitor: StmtVisitor[T]) -> T:
        return visitor.visit_let(self)


@dataclass(frozen=True, slots=True)
class Bind:
    names: tuple[str, ...]
    chain: Chain
    span: Span

    def accept(self, visitor: StmtVisitor[T]) -> T:
        return visitor.visit_bind(self)


@dataclass(frozen=True, slots=True)
class For:
    names: tuple[str, ...]
    iterable: Expr
    body: tuple[Stmt, ...]
    span: Span

    def accept(self, visitor: StmtVisitor[T]) -> T:
        return visitor.visit_for(self)


@dataclass(frozen=True, slots=True)
class If:
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]
    span: Span

    def accept(self, visitor: StmtVisitor[T]) -> T:
        return visitor.visit_if(self)


@dataclass(frozen=True, slots=True)
class Assert:
    cond: Expr
    message: str | None
    span: Span

    def accept(self, visitor: StmtVisitor[T]) -> T:
        return visitor.visit_assert(self)


Stmt = Union[Input, ParamTensor, Output, Let, Bind, For, If, Assert]

# --- top level --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Decorator:
    name: str
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Def:
    """A `block` (reusable subgraph) or a `network` (a model with typed inputs)."""

    kind: str  # "block" | "network"
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    decorators: tuple[Decorator, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    alias: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Module:
    path: str
    items: tuple[Import | Let | Def | Train, ...]


# --- training definitions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Model:
    """`model net = DigitsCNN(num_classes=5) from "best.safetensors" freeze ["features"]`."""

    name: str
    callee: tuple[str, ...]
    args: tuple[Arg, ...]
    weights: Expr | None  # after `from`: a checkpoint path
    freeze: Expr | None  # after `freeze`: a list of module paths
    span: Span
    callee_span: Span


@dataclass(frozen=True, slots=True)
class Setting:
    """A keyword statement of a training definition with a name and arguments: `data digits(size=28)`,
    `optimizer adam(lr=1e-3) for G`, `schedule cosine(warmup=100)`, `show confusion(net)`, and
    `config batch=64` (kind "config", no name)."""

    kind: str  # "data" | "config" | "optimizer" | "schedule" | "show"
    name: str
    args: tuple[Arg, ...]
    span: Span
    name_span: Span
    targets: tuple[str, ...] = ()  # `optimizer ... for G, D`
    label: str | None = None  # `show grid = prior(...)`


@dataclass(frozen=True, slots=True)
class Step:
    """`step discriminator(every=1) { optimizer ...; statements }`."""

    name: str
    args: tuple[Arg, ...]
    settings: tuple[Setting, ...]
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Train:
    """`train NAME { ... }`: what to train, on what, and the objective (docs/language.md)."""

    name: str
    models: tuple[Model, ...]
    settings: tuple[Setting, ...]
    body: tuple[Stmt, ...]  # statements outside any step: shared by every step
    steps: tuple[Step, ...]
    span: Span
    name_span: Span
