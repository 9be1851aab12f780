"""Compile-time expression evaluation for block expansion: arithmetic, lists, builtins,
name lookup (locals, module `let`s, defs, ops) and layer values (`Tower(64)` in an expression).

A mixin of the expander: it reads the expander's resolved program, diagnostics sink and
`let` cache, and calls back `make_layer` for calls to ops, blocks and networks.
"""
from __future__ import annotations

import inspect
import operator
from typing import Any, NoReturn

from .. import limits, messages
from ..builtins import BUILTINS, EvalError
from ..diagnostics import Diagnostic
from ..limits import Budget, OutOfRange, OverBudget
from ..ops import OPS, OpDef, spec_op
from ..source import Span
from ..syntax import ast
from .resolve import DefRef
from .values import POISON, Abort, Fail, Layer, Scope, Tensor


class Evaluator:
    """Every value it computes is within the limits of compiler/limits.py, and every expression
    costs one step of the compilation's `budget` (shared by all its evaluators)."""

    budget: Budget

    # --- expressions -----------------------------------------------------------------------
    def eval(self, e: ast.Expr, scope: Scope) -> Any:
        self.spend(e.span)
        value = self._eval(e, scope)
        if value is POISON:
            raise Fail
        return value

    def spend(self, span: Span, steps: int = 1) -> None:
        """Charge `steps` to the budget; past it, report once (E0523) and unwind the whole expansion."""
        try:
            self.budget.step(steps)
        except OverBudget as err:
            self.over_budget(span, err)

    def over_budget(self, span: Span, err: OverBudget) -> NoReturn:
        if not self.budget.reported:
            self.budget.reported = True
            self.diags.add(messages.over_budget(span, err.what, err.limit))
        raise Abort

    def checked(self, value: Any, span: Span, what: str = "the result") -> Any:
        """`value` if it is within the limits (a finite float, an i64 integer), else E0522 at `span`."""
        try:
            return limits.checked_number(value, what)
        except OutOfRange as err:
            self.error(messages.out_of_range(span, str(err)))

    def error(self, diag: Diagnostic) -> NoReturn:
        """Report `diag` and unwind the expression (or stage) being evaluated."""
        self.diags.add(diag)
        raise Fail

    def _eval(self, e: ast.Expr, scope: Scope) -> Any:
        if isinstance(e, ast.Literal):
            return self.checked(e.value, e.span, "the literal")  # `1e400` reads as infinity
        if isinstance(e, ast.Name):
            return self.lookup(e, scope)
        if isinstance(e, ast.ListExpr):
            return tuple(self.eval(x, scope) for x in e.items)
        if isinstance(e, ast.UnaryOp):
            v = self.eval(e.operand, scope)
            if e.op == "not":
                return not v
            self.need_number(v, "-", e.span)
            return -v  # the limits are symmetric
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
        if spec_op(e.id) is not None:
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
            size = _result_size(name, args)
        except OutOfRange as err:
            self.error(messages.out_of_range(e.span, str(err)))
        self.spend(e.span, size)  # a list built item by item costs its items
        try:
            result = fn(*args)
        except EvalError as err:
            self.error(messages.builtin_error(e.span, str(err)))
        except (ValueError, OverflowError) as err:  # math.sqrt(-1), int(inf): Python's own checks
            self.error(messages.builtin_failed(e.span, name, str(err)))
        return self.checked(result, e.span)

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
            self.list_of(len(left) + len(right), "`+` of these lists", e.span)
            return left + right
        if e.op == "*" and isinstance(left, tuple) and is_int(right):
            self.list_of(len(left) * max(right, 0), f"a list repeated {right:,} times", e.span)
            return left * right
        self.need_number(left, e.op, e.span)
        self.need_number(right, e.op, e.span)
        if e.op in ("/", "//", "%") and right == 0:
            self.error(messages.division_by_zero(e.span))
        try:
            if e.op == "**":
                limits.check_power(left, right)
            result = fn(left, right)
        except OutOfRange as err:
            self.error(messages.out_of_range(e.span, str(err)))
        except OverflowError:  # 1e300 ** 2, (10 ** 18) / 1e-308
            self.error(messages.out_of_range(e.span, "float overflow: the result is too large for a 64-bit float"))
        except ZeroDivisionError:  # 0.0 ** -1
            self.error(messages.division_by_zero(e.span))
        return self.checked(result, e.span)

    def list_of(self, n: int, what: str, span: Span) -> None:
        """A list of `n` items is about to be built: within MAX_LIST, and charged to the budget."""
        try:
            limits.list_length(n, what)
        except OutOfRange as err:
            self.error(messages.out_of_range(span, str(err)))
        self.spend(span, n)

    def need_number(self, v: Any, op: str, span: Span) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.error(messages.needs_numbers(span, op, describe(v)))


_BINOPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "==": operator.eq,
           "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


_BUILTIN_NAMES = {fn: name for name, fn in BUILTINS.items()}


def _result_size(name: str, args: list[Any]) -> int:
    """How many items the built-in `name` builds from `args` (checked against MAX_LIST before it
    builds them: `range(10**9)`); 1 for a number."""
    if name == "range":
        if 1 <= len(args) <= 3 and all(is_int(a) for a in args):
            start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
            return limits.list_length(limits.range_length(start, stop, step), "this `range`")
        return 1  # the built-in itself says what is wrong
    if name in ("enumerate", "zip", "reversed", "sum", "min", "max", "len"):
        return max([len(a) for a in args if isinstance(a, tuple)], default=1)
    return 1


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


