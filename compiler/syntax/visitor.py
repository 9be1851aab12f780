"""Visitors over the statements of a def, in mypy's `NodeVisitor` style.

Each statement class of `ast.py` has `accept(visitor)`, which calls the visitor's method for
its kind (`visit_input`, `visit_param_tensor`, `visit_output`, `visit_let`, `visit_bind`, `visit_for`, `visit_if`,
`visit_assert`). A pass subclasses `StmtVisitor` and writes one method per kind instead of an
`isinstance` chain; a statement kind added to the language then fails loudly in every pass
that forgot it (`NotImplementedError`), not silently. `StmtWalker` is the visitor that only
descends into loop and branch bodies, for passes that care about a few kinds.
"""
from __future__ import annotations

from typing import Generic, Iterable, TypeVar

from . import ast

T = TypeVar("T")


class StmtVisitor(Generic[T]):
    """One method per statement kind; each must be written (no silent default)."""

    def visit(self, s: ast.Stmt) -> T:
        return s.accept(self)

    def visit_body(self, body: Iterable[ast.Stmt]) -> None:
        for s in body:
            self.visit(s)

    def visit_input(self, s: ast.Input) -> T:
        raise NotImplementedError(f"{type(self).__name__} has no visit_input")

    def visit_param_tensor(self, s: ast.ParamTensor) -> T:
        raise NotImplementedError(f"{type(self).__name__} has no visit_param_tensor")

    def visit_output(self, s: ast.Output) -> T:
        raise NotImplementedError(f"{type(self).__name__} has no visit_output")

    def visit_let(self, s: ast.Let) -> T:
        raise NotImplementedError(f"{type(self).__name__} has no visit_let")

    def visit_bind(self, s: ast.Bind) -> T:
        raise NotImplementedError(f"{type(self).__name__} has no visit_bind")

    def visit_for(self, s: ast.For) -> T:
        raise NotImplementedError(f"{type(self).__name__} has no visit_for")

    def visit_if(self, s: ast.If) -> T:
        raise NotImplementedError(f"{type(self).__name__} has no visit_if")

    def visit_assert(self, s: ast.Assert) -> T:
        raise NotImplementedError(f"{type(self).__name__} has no visit_assert")


class StmtWalker(StmtVisitor[None]):
    """Visits every statement, descending into `for` and `if` bodies; does nothing else."""

    def visit_input(self, s: ast.Input) -> None:
        pass

    def visit_param_tensor(self, s: ast.ParamTensor) -> None:
        pass

    def visit_output(self, s: ast.Output) -> None:
        pass

    def visit_let(self, s: ast.Let) -> None:
        pass

    def visit_bind(self, s: ast.Bind) -> None:
        pass

    def visit_for(self, s: ast.For) -> None:
        self.visit_body(s.body)

    def visit_if(self, s: ast.If) -> None:
        self.visit_body(s.then)
        self.visit_body(s.orelse)

    def visit_assert(self, s: ast.Assert) -> None:
        pass


class BoundTensors(StmtWalker):
    """Every tensor name a body binds (inputs, parameter tensors, chain bindings, outputs), with its
    first binder."""

    def __init__(self) -> None:
        self.first: dict[str, ast.Stmt] = {}

    def visit_input(self, s: ast.Input) -> None:
        self.first.setdefault(s.name, s)

    def visit_param_tensor(self, s: ast.ParamTensor) -> None:
        self.first.setdefault(s.name, s)

    def visit_output(self, s: ast.Output) -> None:
        self.first.setdefault(s.name, s)

    def visit_bind(self, s: ast.Bind) -> None:
        for name in s.names:
            self.first.setdefault(name, s)


def bound_tensors(body: Iterable[ast.Stmt]) -> dict[str, ast.Stmt]:
    """Tensor name -> the first statement that binds it, anywhere in `body` (loops and branches too)."""
    walker = BoundTensors()
    walker.visit_body(body)
    return walker.first
