"""The vocabulary each op's PyTorch form is written in: `TorchEntry`, and the helpers entries are
built from (reading attribute source, folding size expressions, entry builders).

An op's entry is the `torch` field of its `OpDef` (compiler/ops/<family>.py). It turns an op
application, given as Python source (`OpSource`), into
  - `module`: the constructor of an nn.Module whose state_dict holds exactly the op's weights
    (`OpDef.weights`), e.g. `nn.Conv2d(c, 64, 3, stride=2, padding=1, bias=False)`;
  - `call`: the expression that applies it in `forward()` (`self.conv1(h)`, `F.relu(h)`,
    `torch.cat([a, b], dim=1)`); weight-free ops also have a functional form (ref None);
  - `shape`: the output dims as Python source where they can be written (`"64"`, `"c + 32"`),
    None elsewhere, so that the emitter can size later layers (`nn.Linear(16 * 5 * 5, 120)`).
Keywords are printed only when the spec gave them or when they differ from PyTorch's default.
Helper classes and functions named in `helpers` live in runtime/layers.py (dlc.runtime.layers).

`module` raises MissingSize when it needs an input size that is unknown (None in `in_shapes`).
`shape` writes None for sizes it cannot express, and raises ValueError only when the number or
rank of the outputs depends on an attr that is not a literal (flatten's start/end, a reshape
shape that is not a tuple, chunk's chunks, sum/mean's dim and keepdim, lstm/gru's state);
layernorm's module needs a literal `dims` likewise.

The op table imports this module, so it imports nothing of the emitter (nor Jinja2, black, torch).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ...ir.dims import Dim

Dims = tuple[str | None, ...]


class MissingSize(Exception):
    """An entry needed a dimension the emitter could not express (in_shapes had None there)."""

    def __init__(self, input_index: int, dim: int) -> None:
        super().__init__(f"input {input_index} needs a known size in dimension {dim}")
        self.input_index = input_index
        self.dim = dim


@dataclass(frozen=True)
class OpSource:
    """One op application as Python source: attrs, which attrs the spec wrote, input dims."""

    attrs: Mapping[str, str]
    given: frozenset[str]
    in_shapes: tuple[Dims, ...]


@dataclass(frozen=True)
class TorchEntry:
    """How to write one op in PyTorch (see the module docstring)."""

    module: Callable[[OpSource], str] | None
    call: Callable[[OpSource, str | None, list[str]], str]
    helpers: tuple[str, ...] = ()


# --- reading attribute source -------------------------------------------------------------------

_UNKNOWN = object()
_ALWAYS = object()  # a default that never matches: the keyword is always printed


def _parse(text: str) -> ast.expr:
    return ast.parse(text.strip(), mode="eval").body


def _value(text: str) -> Any:
    """The value of literal source ("3", "(1, 2)", "'same'", "2 * 4"); _UNKNOWN for "stride"."""
    try:
        return ast.literal_eval(_simplify(text))
    except (ValueError, SyntaxError, TypeError):
        return _UNKNOWN


def _const(src: OpSource, name: str) -> Any:
    """The literal value of an attr that must be constant (it decides a rank or a count)."""
    v = _value(src.attrs[name])
    if v is _UNKNOWN:
        raise ValueError(f"`{name}` must be a constant here, got `{src.attrs[name]}`")
    return v


def _items(text: str) -> list[str] | None:
    """Element sources of a tuple or list source; None for anything else."""
    node = _parse(text)
    return [ast.unparse(e) for e in node.elts] if isinstance(node, (ast.Tuple, ast.List)) else None


def _tidy(text: str, compact: bool = False) -> str:
    """Canonical source: lists become tuples; with `compact`, `(3, 3)` becomes `3`."""
    node = _parse(text)
    if isinstance(node, ast.List):
        node = ast.Tuple(node.elts, ast.Load())
    if compact and isinstance(node, ast.Tuple) and node.elts and len({ast.unparse(e) for e in node.elts}) == 1:
        node = node.elts[0]
    return ast.unparse(node)


def _is_default(text: str, default: Any) -> bool:
    v = _value(text)
    if v is _UNKNOWN or default is _ALWAYS:
        return False
    if isinstance(v, bool) or isinstance(default, bool) or v is None or default is None:
        return v is default
    if isinstance(v, tuple) and not isinstance(default, tuple):
        return all(x == default for x in v)
    return v == default


def _kw(src: OpSource, name: str, default: Any, keyword: str | None = None, compact: bool = True) -> str | None:
    """`keyword=value` if the spec gave `name` or its value differs from `default`; else None.

    An empty `keyword` prints the value alone (a positional argument)."""
    text = src.attrs[name]
    if name not in src.given and _is_default(text, default):
        return None
    value = _tidy(text, compact)
    keyword = name if keyword is None else keyword
    return f"{keyword}={value}" if keyword else value


def _call(func: str, args: list[str | None]) -> str:
    return f"{func}({', '.join(a for a in args if a is not None)})"


def _atom(expr: str) -> str:
    """`expr`, parenthesized unless it can take `.method()` as is."""
    node = _parse(expr)
    return expr if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)) else f"({expr})"


def _join(op: str, exprs: list[str]) -> str:
    """`a op b op ...` with the parentheses Python needs, and no others."""
    return ast.unparse(_parse(f" {op} ".join(f"({e})" for e in exprs)))


# --- sizes --------------------------------------------------------------------------------------

def _simplify(text: str) -> str:
    """Integer arithmetic in attribute source folded by the IR's own simplifier, `Dim`
    (`2 * 4` -> `8`, `h + 2 - 2` -> `h`); any other source unchanged."""
    d = _as_dim(_parse(text))
    return text.strip() if d is None else d.render(str)


def _as_dim(node: ast.expr) -> Dim | None:
    """Python integer arithmetic as a Dim: names and other primaries are its symbols."""
    if isinstance(node, ast.Constant):
        return Dim.const(node.value) if type(node.value) is int else None
    if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
        return Dim.sym(ast.unparse(node))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _as_dim(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp):
        a, b = _as_dim(node.left), _as_dim(node.right)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.FloorDiv) and b.is_const and b.value > 0:
            return a // b.value
    return None


def _size(src: OpSource, i: int, d: int) -> str:
    """Source of dim `d` of input `i`; MissingSize where it is unknown."""
    dims = src.in_shapes[i]
    text = dims[d] if -len(dims) <= d < len(dims) else None
    if text is None:
        raise MissingSize(i, d % len(dims) if dims else d)
    return text


def _norm(d: int, rank: int) -> int:
    if not -rank <= d < rank:
        raise ValueError(f"dimension {d} is out of range for rank {rank}")
    return d % rank


# --- sizes several families write -----------------------------------------------------------------

# --- entry builders -------------------------------------------------------------------------------

Args = Callable[[OpSource], list[str | None]]


def _no_args(src: OpSource) -> list[str | None]:
    return []


def _apply(ref: str, inputs: list[str]) -> str:
    return _call(ref, list(inputs))


def _through_module(op: str) -> Callable[[OpSource, str | None, list[str]], str]:
    def call(src: OpSource, ref: str | None, inputs: list[str]) -> str:
        if ref is None:
            raise ValueError(f"`{op}` has weights: it is called through its module")
        return _apply(ref, inputs)
    return call


def _weighted(op: str, module: Callable[[OpSource], str], helpers: tuple[str, ...] = ()) -> TorchEntry:
    """An op with weights: built as `module`, always called through it."""
    return TorchEntry(module, _through_module(op), helpers)


def _unary(module: Callable[[OpSource], str], functional: Callable[[OpSource, str], str],
           helpers: tuple[str, ...] = ()) -> TorchEntry:
    """A weight-free single-input op: `module` for nn.Sequential, `functional(src, x)` for forward()."""
    def call(src: OpSource, ref: str | None, inputs: list[str]) -> str:
        return _apply(ref, inputs) if ref else functional(src, inputs[0])
    return TorchEntry(module, call, helpers)


def _pair(cls: str, fn: str, args: Args = _no_args, helpers: tuple[str, ...] = ()) -> TorchEntry:
    """`cls(args)` as module, `fn(x, args)` as functional form (same arguments)."""
    return _unary(lambda s: _call(cls, args(s)), lambda s, x: _call(fn, [x, *args(s)]), helpers)


def _method(cls: str, method: str, args: Args, fargs: Args | None = None) -> TorchEntry:
    """Helper class `cls(args)` as module, `x.method(fargs)` as functional form."""
    fargs = fargs or args
    return _unary(lambda s: _call(cls, args(s)), lambda s, x: _call(f"{_atom(x)}.{method}", fargs(s)),
                  (cls,) if not cls.startswith("nn.") else ())


def _multi(functional: Callable[[OpSource, list[str]], str], helpers: tuple[str, ...] = ()) -> TorchEntry:
    """A weight-free op of several inputs: no module, a functional form only."""
    return TorchEntry(None, lambda src, ref, inputs: functional(src, inputs), helpers)


