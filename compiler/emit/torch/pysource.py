"""Compile-time expressions of the spec as Python source, with minimal parentheses.

Lists become tuples (immutable, like the spec's values); `true`/`none` become `True`/`None`;
`sqrt`, `floor`, `ceil` come from `math`. Names go through a mapping so that the same spec
expression reads `stride` in `__init__` and `self.stride` in `forward`.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from ...syntax import ast

_PREC = {"if": 0, "or": 1, "and": 2, "not": 3, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
         "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6, "neg": 7, "**": 8}
_ATOM = 9
_MATH = {"sqrt": "math.sqrt", "floor": "math.floor", "ceil": "math.ceil"}

NameMap = Callable[[str], str]


def py_expr(e: ast.Expr, names: NameMap) -> str:
    """Python source for a spec expression."""
    return _expr(e, names)[0]


def py_value(v: Any) -> str:
    """Python source for an evaluated compile-time value."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (tuple, list)):
        items = ", ".join(py_value(x) for x in v)
        return f"({items},)" if len(v) == 1 else f"({items})"
    return str(v)


def _expr(e: ast.Expr, names: NameMap) -> tuple[str, int]:
    if isinstance(e, ast.Literal):
        return py_value(e.value), _ATOM
    if isinstance(e, ast.Name):
        return (_MATH.get(e.id) or names(e.id)), _ATOM
    if isinstance(e, ast.ListExpr):
        return py_value_tuple([_expr(x, names)[0] for x in e.items]), _ATOM
    if isinstance(e, ast.UnaryOp):
        if e.op == "not":
            return f"not {_wrap(e.operand, names, _PREC['not'])}", _PREC["not"]
        return f"-{_wrap(e.operand, names, _PREC['neg'])}", _PREC["neg"]
    if isinstance(e, ast.BinOp):
        p = _PREC[e.op]
        right_p = p + 1 if e.op != "**" else p  # left-associative except **
        left_p = p if e.op != "**" else p + 1
        return f"{_wrap(e.left, names, left_p)} {e.op} {_wrap(e.right, names, right_p)}", p
    if isinstance(e, ast.Call):
        args = ", ".join(_arg(a, names) for a in e.args)
        return f"{_wrap(e.func, names, _ATOM)}({args})", _ATOM
    if isinstance(e, ast.Index):
        return f"{_wrap(e.obj, names, _ATOM)}[{_expr(e.index, names)[0]}]", _ATOM
    if isinstance(e, ast.Attr):
        if isinstance(e.obj, ast.Name):
            return names(f"{e.obj.id}.{e.name}"), _ATOM
        return f"{_wrap(e.obj, names, _ATOM)}.{e.name}", _ATOM
    if isinstance(e, ast.IfExpr):  # right-associative, like Python's
        p = _PREC["if"]
        return f"{_wrap(e.then, names, p + 1)} if {_wrap(e.cond, names, p + 1)} else {_wrap(e.orelse, names, p)}", p
    raise TypeError(f"unsupported expression {e!r}")


def py_value_tuple(items: list[str]) -> str:
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _wrap(e: ast.Expr, names: NameMap, min_prec: int) -> str:
    text, p = _expr(e, names)
    return text if p >= min_prec else f"({text})"


def _arg(a: ast.Arg, names: NameMap) -> str:
    value = _expr(a.value, names)[0]
    return f"{a.name}={value}" if a.name else value
