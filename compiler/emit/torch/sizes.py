"""Sizes in a generated class's own terms: the IR's `Dim`s over the names `__init__` can read.

The class writer tracks each tensor's sizes as `Dim`s (None where unknown) whose symbols say
where a size comes from:
  - `=name`: a Python expression valid in `__init__`, fixed when the module is built: a
    constructor parameter (`=cout`), a keyword size argument (`=in_channels`), a running size
    variable (`=h_channels`), another compile-time name (`=mult`), a primary the polynomial does
    not look into (`=blocks[0]`, `=int(c1 * compression)`, `=self.layer1.out_channels`);
  - `~N`: the size N that every use of the def happens to have (not derived from parameters:
    printed as N in code, shown as `?` in comments, which claim only what holds for every
    instance);
  - `?k`: a placeholder for a size nobody tracks (what a shape rule computes from it is unknown);
  - runtime symbols of the IR (`B`, `T`, `H`), and constants.
Output sizes are the op's own shape rule (the op table) evaluated on these Dims: there is no
second rule per op here, and sizes print from the Dim (one simplifier: the Dim's canonical form).
"""
from __future__ import annotations

import ast as pyast
from typing import Any, Mapping

from ...ir.dims import Dim
from ...ir.types import TensorType
from ...ops import OpDef
from ...syntax import ast
from .pysource import NameMap, py_expr

Size = Dim | None
Sizes = list[Size]


def built(expr: str) -> Dim:
    """A size given by a Python expression of `__init__` (a parameter, a size argument...)."""
    return Dim.sym(f"={expr}")


def observed(value: int, where: str = "") -> Dim:
    """A size every use agrees on but no parameter gives; `where` names an input dim of the def
    (`0:2`), so that a caller can put its own size in (see `substitute`)."""
    return Dim.sym(f"~{value}:{where}" if where else f"~{value}")


def trial_symbol(var: str, d: int) -> Dim:
    """A size a loop's trial run follows through the body (never printed: not a Python name)."""
    return Dim.sym(f"=<{var}:{d}>")


def placeholder(k: int) -> Dim:
    return Dim.sym(f"?{k}")


def _observed_values(d: Dim) -> dict[str, Dim]:
    return {s: Dim.const(int(s[1:].split(":")[0])) for s in d.symbols() if s.startswith("~")}


def py_size(d: Size) -> str | None:
    """Python source of a size in `__init__` (`cin`, `2*h`, `400`); None when it holds a
    placeholder or a size of the input (`T`), which `__init__` cannot read."""
    if d is None or any(not s.startswith(("=", "~")) or s.startswith("=<") for s in d.symbols()):
        return None
    return d.substitute(_observed_values(d)).render(_python_name)


def comment_size(d: Size, hidden: set[str]) -> str:
    """A size in a shape comment: only what holds for every instance of the class, in names a
    reader of the class sees (its parameters, not the emitter's size variables), else `?`."""
    if d is None or any(s[:1] in ("?", "~") or s[1:] in hidden or s.startswith(("=self.", "=<"))
                        for s in d.symbols()):
        return "?"
    text = d.render(_python_name)
    return pyast.unparse(pyast.parse(text, mode="eval"))  # `3*hidden` -> `3 * hidden`, as black writes code


def _python_name(symbol: str) -> str:
    return symbol[1:] if symbol.startswith("=") else symbol


def source_shapes(shapes: list[Sizes | None]) -> tuple[tuple[str | None, ...], ...]:
    """Input sizes as Python source, for the ops' PyTorch forms (None where not printable)."""
    return tuple(tuple(py_size(d) for d in shape) if shape is not None else () for shape in shapes)


def spec_names(e: ast.Expr) -> set[str]:
    """The names a spec expression reads."""
    if isinstance(e, ast.Name):
        return {e.id}
    if isinstance(e, ast.Attr):
        return spec_names(e.obj)
    children: tuple = ()
    if isinstance(e, ast.ListExpr):
        children = e.items
    elif isinstance(e, ast.BinOp):
        children = (e.left, e.right)
    elif isinstance(e, ast.UnaryOp):
        children = (e.operand,)
    elif isinstance(e, ast.Call):
        children = (e.func, *(a.value for a in e.args))
    elif isinstance(e, ast.Index):
        children = (e.obj, e.index)
    elif isinstance(e, ast.IfExpr):
        children = (e.cond, e.then, e.orelse)
    return set().union(*(spec_names(c) for c in children)) if children else set()


def is_known(d: Size) -> bool:
    return d is not None and not any(s.startswith("?") for s in d.symbols())


def is_proven(d: Size) -> bool:
    """A constant or runtime-symbol size: the IR's own value, checkable against every execution."""
    return d is not None and not any(s[:1] in ("?", "~", "=") for s in d.symbols())


def names_in(d: Size) -> set[str]:
    """The `__init__` expressions a size reads (`=cout` -> `cout`)."""
    return set() if d is None else {s[1:] for s in d.symbols() if s.startswith("=")}


def substitute(d: Size, binding: Mapping[str, Size]) -> Size:
    """A child's size in the caller's terms: each symbol in `binding` (`=cout`, an observed input
    size `~64:0:1`) replaced by its value; None if an `=name` has none (the child's own attributes,
    its running variables) or a value is unknown."""
    if d is None:
        return None
    env = {}
    for s in d.symbols():
        if s in binding:
            if binding[s] is None:
                return None
            env[s] = binding[s]
        elif s.startswith("="):
            return None
    return d.substitute(env)


def spec_size(e: ast.Expr, names: NameMap) -> Dim:
    """An integer-valued spec expression as a size: `2 * h` -> 2*=h, `blocks[0]` -> =blocks[0]."""
    if isinstance(e, ast.Literal) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return Dim.const(e.value)
    if isinstance(e, ast.UnaryOp) and e.op == "-":
        return -spec_size(e.operand, names)
    if isinstance(e, ast.BinOp) and e.op in ("+", "-", "*"):
        a, b = spec_size(e.left, names), spec_size(e.right, names)
        return a + b if e.op == "+" else a - b if e.op == "-" else a * b
    if isinstance(e, ast.BinOp) and e.op == "//" and isinstance(e.right, ast.Literal) \
            and isinstance(e.right.value, int) and e.right.value > 0:
        return spec_size(e.left, names) // e.right.value
    text = py_expr(e, names)
    primary = isinstance(e, (ast.Name, ast.Attr, ast.Index, ast.Call))
    return built(text if primary else f"({text})")


class Unknown:
    """An attribute value a shape rule must not look at (not a literal, not a size): any use
    raises, so a rule that needs it yields unknown outputs instead of a wrong guess."""

    def _refuse(self, *args: Any) -> Any:
        raise TypeError("an attribute whose value is not known here")

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse
    __int__ = __index__ = __float__ = __iter__ = __len__ = __getitem__ = __contains__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __floordiv__ = __mod__ = _refuse
    __neg__ = __truediv__ = __rtruediv__ = __rfloordiv__ = _refuse


UNKNOWN = Unknown()

RULE_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError, AttributeError)


def infer_sizes(op: OpDef, attrs: dict[str, Any], in_types: list[TensorType], n_out: int) -> list[Sizes]:
    """The op's shape rule on sizes in the class's terms; unknown (None) where the rule needs
    what is not known here. The rule's own errors cannot occur for a valid spec except through
    placeholders and static symbols, so any of them means "not expressible", never a diagnostic."""
    from ...ops.table import ShapeError

    try:
        outs = op.infer(attrs, in_types)
    except (ShapeError, *RULE_ERRORS):
        return [None] * n_out
    if len(outs) != n_out:
        return [None] * n_out
    return [[d if is_known(d) else None for d in t.shape] for t in outs]


def placeholder_types(dtypes: list[str], shapes: list[Sizes]) -> list[TensorType]:
    """Input types for `infer_sizes`: each unknown size a distinct placeholder."""
    out, k = [], 0
    for dtype, shape in zip(dtypes, shapes, strict=True):
        dims = []
        for d in shape:
            if d is None:
                d, k = placeholder(k), k + 1
            dims.append(d)
        out.append(TensorType(dtype, tuple(dims)))
    return out
