"""Decorators on blocks and networks: `@init("normal", std=0.02)`.

Assumes: parsed defs. Guarantees: every decorator is known and its arguments are literal
values of the right kind; `init_scheme(def)` gives the checked initialization convention
that backends apply (PyTorch's defaults when a def has no `@init`).
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import messages
from ..diagnostics import Diagnostics
from ..syntax import ast

INIT_SCHEMES = {
    "default": (),  # PyTorch's per-layer defaults
    "normal": ("mean", "std"),  # N(mean, std) weights, zero biases (DCGAN: std=0.02; GPT-2: std=0.02)
    "xavier_uniform": ("gain",),
    "xavier_normal": ("gain",),
    "kaiming_uniform": ("nonlinearity",),
    "kaiming_normal": ("nonlinearity",),
}


@dataclass(frozen=True)
class InitScheme:
    scheme: str
    options: tuple[tuple[str, float | str], ...]


def check_decorators(d: ast.Def, diags: Diagnostics) -> None:
    for dec in d.decorators:
        if dec.name != "init":
            diags.add(messages.unknown_decorator(dec.span, dec.name, ["init"]))
            continue
        _check_init(dec, diags)


def _check_init(dec: ast.Decorator, diags: Diagnostics) -> None:
    positional = [a for a in dec.args if a.name is None]
    if len(positional) != 1 or not _literal(positional[0].value, str):
        diags.add(messages.init_without_scheme(dec.span, INIT_SCHEMES))
        return
    scheme = positional[0].value.value
    if scheme not in INIT_SCHEMES:
        diags.add(messages.unknown_init_scheme(positional[0].span, scheme, list(INIT_SCHEMES)))
        return
    for a in dec.args:
        if a.name is not None and a.name not in INIT_SCHEMES[scheme]:
            diags.add(messages.unknown_init_option(a.span, scheme, a.name, INIT_SCHEMES[scheme]))
        elif a.name is not None and not _literal(a.value, (int, float, str)):
            diags.add(messages.init_option_not_literal(a.value.span, a.name))


def init_scheme(d: ast.Def) -> InitScheme:
    """The checked `@init` of a def, or PyTorch's defaults."""
    for dec in d.decorators:
        if dec.name == "init":
            options = tuple(sorted((a.name, _value(a.value)) for a in dec.args if a.name))
            return InitScheme(dec.args[0].value.value, options)
    return InitScheme("default", ())


def _literal(e: ast.Expr, kinds) -> bool:
    if isinstance(e, ast.UnaryOp) and e.op == "-":
        return _literal(e.operand, kinds)
    return isinstance(e, ast.Literal) and isinstance(e.value, kinds) and not isinstance(e.value, bool)


def _value(e: ast.Expr):
    return -_value(e.operand) if isinstance(e, ast.UnaryOp) else e.value
