"""Functions available in compile-time expressions: `range(4)`, `len(widths)`, `sqrt(d)`."""
from __future__ import annotations

import math
from typing import Any, Callable


class EvalError(Exception):
    """A compile-time expression could not be evaluated; the message is shown to the user."""


def _range(*args: Any) -> tuple[int, ...]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise EvalError("`range` takes one to three integers")
    return tuple(range(*args))


def _seq(v: Any, fn: str) -> tuple:
    if not isinstance(v, tuple):
        raise EvalError(f"`{fn}` needs a list")
    return v


def _numbers(args: tuple, fn: str) -> tuple:
    vals = args[0] if len(args) == 1 and isinstance(args[0], tuple) else args
    if not vals or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        raise EvalError(f"`{fn}` needs numbers")
    return vals


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EvalError("`int` needs a number")
    return int(v)


def _round(v: Any, ndigits: Any = None) -> int | float:
    """Python's `round`: to the nearest integer, halves to even (`round(2.5)` is 2), or to
    `ndigits` decimals (a number); the emitted PyTorch calls the same function."""
    if ndigits is not None and (isinstance(ndigits, bool) or not isinstance(ndigits, int)):
        raise EvalError("`round` takes a number and, optionally, an integer count of digits")
    return round(_numbers((v,), "round")[0], ndigits)


def _sqrt(v: int | float) -> float:
    if v < 0:
        raise ValueError(f"the square root of a negative number ({v!r})")  # as math.sqrt, with the number
    return math.sqrt(v)


BUILTINS: dict[str, Callable[..., Any]] = {
    "range": _range,
    "len": lambda v: len(_seq(v, "len")),
    "enumerate": lambda v: tuple(enumerate(_seq(v, "enumerate"))),
    "zip": lambda *vs: tuple(zip(*(_seq(v, "zip") for v in vs))),
    "reversed": lambda v: tuple(reversed(_seq(v, "reversed"))),
    "min": lambda *a: min(_numbers(a, "min")),
    "max": lambda *a: max(_numbers(a, "max")),
    "sum": lambda v: sum(_numbers((v,), "sum")),
    "abs": lambda v: abs(_numbers((v,), "abs")[0]),
    "int": _int,
    "float": lambda v: float(_numbers((v,), "float")[0]),
    "sqrt": lambda v: _sqrt(_numbers((v,), "sqrt")[0]),
    "floor": lambda v: math.floor(_numbers((v,), "floor")[0]),
    "ceil": lambda v: math.ceil(_numbers((v,), "ceil")[0]),
    "round": _round,
}
