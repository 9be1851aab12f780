"""Compile-time expression evaluation for block expansion: arithmetic, lists, builtins,
name lookup (locals, module `let`s, defs, ops) and layer values (`Tower(64)` in an expression).

A mixin of the expander: it reads the expander's resolved program, diagnostics sink and
`let` cache, and calls back `make_layer` for calls to ops, blocks and networks.
"""
from __future__ import annotations

import inspect
import operator
from typing import Any, NoReturn

from .. import messages
from ..builtins import BUILTINS, EvalError
from ..diagnostics import Diagnostic
from ..ops import OPS, OpDef
from ..source import Span
from ..syntax import ast
from .resolve import DefRef
from .values import POISON, Fail, Layer, Scope, Tensor


class Evaluator:
    # --- expressions -----------------------------------------------------------------------
    def eval(self, e: ast.Expr, scope: Scope) -> Any:
        value = self._eval(e, scope)
        if value is POISON:
            raise Fail
        return value

    def error(self, diag: Diagnostic) -> NoReturn:
        """Report `diag` and unwind the expression (or stage) being evaluated."""
        self.diags.add(diag)
        raise Fail

    def _eval(self, e: ast.Expr, scope: Scope) -> Any:
        if isinstance(e, ast.Literal):
            return e.value
        if isinstance(e, ast.Name):
            return self.lookup(e, scope)
        if isinstance(e, ast.ListExpr):
            return tuple(self.eval(x, scope) for x in e.items)
        if isinstance(e, ast.UnaryOp):
            v = self.eval(e.operand, scope)
            if e.op == "not":
                return not v
            self.need_number(v, "-", e.span)
            return -v
        if isinstance(e, ast.BinOp):
            return self.binop(e, scope)
        if isinstance(e, ast.Call):
            return self.call(e, scope)
        if isinstance(e, ast.Index):
            return self.index(e, scope)
        if isinstance(e, ast.IfExpr):  # as in Python: only the branch taken is evaluated
            return self.eval(e.then if self.eval(e.cond, scope) else e.orelse, scope)
        if isinstance(e, ast.Attr):
            if isinstance(e.obj, ast.Name) and e.obj.id in self.r.scopes[scope.module].aliases:
                ref = self.r.lookup_def(scope.module, (e.obj.id, e.name))
                if ref is not None:
                    return ref
            self.error(messages.not_an_attribute(e.span, e.name))
        raise TypeError(f"no evaluation rule for {type(e).__name__}")  # ast.Expr has no other kind

    def index(self, e: ast.Index, scope: Scope) -> Any:
        obj, idx = self.eval(e.obj, scope), self.eval(e.index, scope)
        if not isinstance(obj, tuple) or not is_int(idx):
            self.error(messages.cannot_index(e.span, describe(obj), idx))
        if not -len(obj) <= idx < len(obj):
            self.error(messages.index_out_of_range(e.span, idx, len(obj)))
        return obj[idx]

    def lookup(self, e: ast.Name, scope: Scope) -> Any:
        if e.id in scope.env:
            return scope.env[e.id]
        let = self.module_let(scope.module, e.id)
        if let is not None:
            return let
        ref = self.r.lookup_def(scope.module, (e.id,))
        if ref is not None:
            return ref
        if e.id in OPS:
            return OPS[e.id]
        if e.id in BUILTINS:
            return BUILTINS[e.id]
        raise Fail  # reported by name resolution

    def module_let(self, module: str, name: str) -> Any:
        let = self.r.scopes[module].lets.get(name)
        if let is None:
            return None
        key = (let.module, name)
        if key not in self.let_cache:
            if key in self.let_active:
                self.error(messages.let_cycle(let.node.span, name))
            self.let_active.add(key)
            try:
                self.let_cache[key] = self.eval(let.node.value, Scope("", "", let.module, {}, ()))
            finally:
                self.let_active.discard(key)
        return self.let_cache[key]

    def call(self, e: ast.Call, scope: Scope) -> Any:
        fn = self.eval(e.func, scope)
        if isinstance(fn, (OpDef, DefRef)):
            return self.make_layer(fn, e.args, e.span, scope)
        if callable(fn) and fn in _BUILTIN_NAMES:
            return self.call_builtin(_BUILTIN_NAMES[fn], e, scope)
        self.error(messages.not_callable(e.span, describe(fn)))

    def call_builtin(self, name: str, e: ast.Call, scope: Scope) -> Any:
        if any(a.name for a in e.args):
            self.error(messages.builtin_takes_positional(e.span))
        fn = BUILTINS[name]
        args = [self.eval(a.value, scope) for a in e.args]
        try:
            inspect.signature(fn).bind(*args)
        except TypeError:
            self.error(messages.builtin_arity(e.span, name, len(args)))
        try:
            return fn(*args)
        except EvalError as err:
            self.error(messages.builtin_error(e.span, str(err)))
        except (ValueError, OverflowError) as err:  # math.sqrt(-1), int(inf): Python's own checks
            self.error(messages.builtin_failed(e.span, name, str(err)))

    def binop(self, e: ast.BinOp, scope: Scope) -> Any:
        if e.op == "and":
            return self.eval(e.left, scope) and self.eval(e.right, scope)
        if e.op == "or":
            return self.eval(e.left, scope) or self.eval(e.right, scope)
        left, right = self.eval(e.left, scope), self.eval(e.right, scope)
        fn = _BINOPS[e.op]
        if e.op in ("==", "!="):
            return fn(left, right)
        if e.op == "+" and isinstance(left, tuple) and isinstance(right, tuple):
            return left + right
        if e.op == "*" and isinstance(left, tuple) and is_int(right):
            return left * right
        self.need_number(left, e.op, e.span)
        self.need_number(right, e.op, e.span)
        if e.op in ("/", "//", "%") and right == 0:
            self.error(messages.division_by_zero(e.span))
        return fn(left, right)

    def need_number(self, v: Any, op: str, span: Span) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.error(messages.needs_numbers(span, op, describe(v)))


_BINOPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "==": operator.eq,
           "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


_BUILTIN_NAMES = {fn: name for name, fn in BUILTINS.items()}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def describe(v: Any) -> str:
    if isinstance(v, Layer):
        return f"layer `{v.name}`"
    if isinstance(v, Tensor):
        return "a tensor"
    if isinstance(v, (OpDef, DefRef)):
        return f"`{v.name}`"
    if isinstance(v, tuple):
        return "a list"
    if isinstance(v, str):
        return f'"{v}"'
    return f"`{v!r}`" if not callable(v) else "a function"


