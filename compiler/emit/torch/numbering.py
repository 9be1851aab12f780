"""The numbers of unlabeled stages, as the generated class can compute them.

The IR names a scope's unlabeled stages 0, 1, 2, ... in the order they run (passes/expand.py:
one running counter per block instance, through its loops and branches; a labeled stage or a
layer applied by name takes none). The class writer follows that counter as a `Count`: a
constant plus integer terms that `__init__` and forward() can both write -- a loop's variable
(`i` in `for i in range(n)`), a loop's length after it (`len(blocks)`), the stages a branch ran
(`(1 if deep else 0)`) -- so that a name is right for every value of the parameters, not only
for the compiled ones. Where the counter follows from nothing the class can write (a nested loop
whose passes run different numbers of stages, a loop over a list whose pass number no name
holds), the counter is lost, with the reason, and a stage that needs a name there is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...source import Span
from ...syntax import ast
from .pysource import NameMap, py_expr
from .sizes import spec_names


@dataclass(frozen=True)
class Term:
    init: str  # the term as `__init__` source
    fwd: str  # as forward() source
    names: frozenset[str]  # the spec names it reads (a later binding of one invalidates it)


@dataclass(frozen=True)
class Count:
    """`const + sum(coef * term)`; terms in the order they first appeared (as they are written)."""

    const: int = 0
    terms: tuple[tuple[Term, int], ...] = ()

    @staticmethod
    def of(term: Term, coef: int = 1) -> Count:
        return Count(0, ((term, coef),)) if coef else Count()

    def __add__(self, other: Count | int) -> Count:
        other = other if isinstance(other, Count) else Count(other)
        coefs = dict(self.terms)
        for term, c in other.terms:
            coefs[term] = coefs.get(term, 0) + c
        return Count(self.const + other.const, tuple((t, c) for t, c in coefs.items() if c))

    def __sub__(self, other: Count) -> Count:
        return self + other.scaled(-1)

    def scaled(self, k: int) -> Count:
        return Count(self.const * k, tuple((t, c * k) for t, c in self.terms if c * k))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Count) and self.const == other.const and dict(self.terms) == dict(other.terms)

    def __hash__(self) -> int:
        return hash((self.const, frozenset(self.terms)))

    @property
    def is_const(self) -> bool:
        return not self.terms

    def names(self) -> set[str]:
        return set().union(*(t.names for t, _ in self.terms))

    def source(self, forward: bool = False) -> str:
        """`3`, `i + 1`, `2 * i + len(blocks) - 1` (terms first, as hand-written code numbers)."""
        parts: list[str] = []
        for term, c in self.terms:
            text = term.fwd if forward else term.init
            sign = "-" if c < 0 else "+"
            body = text if abs(c) == 1 else f"{abs(c)} * {text}"
            parts.append(f"{sign} {body}" if parts else (f"-{body}" if c < 0 else body))
        if self.const or not parts:
            parts.append(f"{'-' if self.const < 0 else '+'} {abs(self.const)}" if parts else str(self.const))
        return " ".join(parts)


@dataclass(frozen=True)
class Lost:
    """Why the counter follows from nothing the class can write: shown where a stage needs it."""

    why: str
    span: Span


def term(e: ast.Expr, init_name: NameMap, fwd_name: NameMap, wrap: bool = False) -> Term:
    init, fwd = py_expr(e, init_name), py_expr(e, fwd_name)
    if wrap and not isinstance(e, (ast.Name, ast.Call, ast.Index, ast.Attr, ast.Literal)):
        init, fwd = f"({init})", f"({fwd})"
    return Term(init, fwd, frozenset(spec_names(e)))


def pass_index(s: ast.For, init_name: NameMap, fwd_name: NameMap) -> Count | None:
    """The number of the loop's current pass (0, 1, ...), or None where no name holds it:
    `i` in `for i in range(n)`, `i - 2` in `for i in range(2, n)`."""
    it = s.iterable
    if len(s.names) != 1 or not _is_range(it) or len(it.args) not in (1, 2):
        return None
    if len(it.args) == 2 and not _int_literal(it.args[0].value):
        return None
    start = it.args[0].value.value if len(it.args) == 2 else 0
    var = ast.Name(s.names[0], s.span)
    return Count.of(term(var, init_name, fwd_name)) + (-start)


def loop_length(s: ast.For, init_name: NameMap, fwd_name: NameMap) -> Count:
    """How many passes the loop makes: a constant for literals, `len(blocks)` in `range(len(blocks))`,
    `max(n, 0)` in `range(n)`, else `len(<iterable>)`."""
    it = s.iterable
    if isinstance(it, ast.ListExpr):
        return Count(len(it.items))
    if _is_range(it) and all(_int_literal(a.value) for a in it.args) and all(a.name is None for a in it.args):
        return Count(len(range(*(a.value.value for a in it.args))))
    if _is_range(it) and len(it.args) == 1:
        (arg,) = it.args
        if isinstance(arg.value, ast.Call) and isinstance(arg.value.func, ast.Name) and arg.value.func.id == "len":
            return Count.of(term(arg.value, init_name, fwd_name))
        call = ast.Call(ast.Name("max", s.span), (arg, ast.Arg(None, ast.Literal(0, s.span), s.span)), s.span)
        return Count.of(term(call, init_name, fwd_name))
    call = ast.Call(ast.Name("len", s.span), (ast.Arg(None, it, s.span),), s.span)
    return Count.of(term(call, init_name, fwd_name))


def loop_counts(s: ast.For, base: Count | Lost, layers: set[str], init_name: NameMap,
                fwd_name: NameMap) -> tuple[Count | Lost, Count | Lost]:
    """The counter in the loop's body (at the start of each pass) and after the loop, from the
    counter before it (`base`): `base + step * i` and `base + step * len(...)`."""
    if isinstance(base, Lost):
        return base, base
    step = per_pass(s.body, layers)
    bound = set(s.names) | bound_in(s.body)
    line = s.span.line
    if base.names() & bound:
        lost = Lost(f"follows from `{sorted(base.names() & bound)[0]}`, which the loop at line {line} binds again",
                    s.span)
        return lost, lost
    if step == 0:
        return base, base
    if step is None:
        lost = Lost(f"counts the unlabeled stages of the earlier passes of the loop at line {line}, which differ "
                    "from pass to pass (a nested loop, branch or `* n` in it)", s.span)
        return lost, lost
    index = pass_index(s, init_name, fwd_name)
    length = loop_length(s, init_name, fwd_name)
    what = py_expr(s.iterable, init_name)
    inside = base + index.scaled(step) if index is not None else Lost(
        f"counts the unlabeled stages of the earlier passes of the loop over `{what}` at line {line}, whose pass "
        f"number no name holds (loop over `range(len({what}))` instead)", s.span)
    after = base + length.scaled(step) if not length.names() & bound else Lost(
        f"follows from the length of `{what}`, which the loop at line {line} binds again", s.span)
    return inside, after


def merged_count(s: ast.If, entering: Count | Lost, then_count: Count | Lost, else_count: Count | Lost,
                 init_name: NameMap, fwd_name: NameMap) -> Count | Lost:
    """The counter after an `if`: the same on both paths, else `(k if cond else m)` on top."""
    if then_count == else_count or isinstance(then_count, Lost):
        return then_count
    if isinstance(else_count, Lost) or isinstance(entering, Lost):
        return else_count if isinstance(else_count, Lost) else entering
    taken, other = then_count - entering, else_count - entering
    cond = term(s.cond, init_name, fwd_name, wrap=isinstance(s.cond, ast.IfExpr))
    names = frozenset(cond.names | taken.names() | other.names())
    if names & (bound_in(s.then) | bound_in(s.orelse)):
        return Lost(f"depends on which branch of the `if` at line {s.span.line} ran, whose condition that `if` "
                    "binds again", s.span)
    init = f"({taken.source()} if {cond.init} else {other.source()})"
    fwd = f"({taken.source(True)} if {cond.fwd} else {other.source(True)})"
    return entering + Count.of(Term(init, fwd, names))


def bound_in(body: tuple[ast.Stmt, ...]) -> set[str]:
    """The compile-time names a body binds (`let`s and loop variables, nested ones too)."""
    out: set[str] = set()
    for st in body:
        if isinstance(st, ast.Let):
            out.add(st.name)
        elif isinstance(st, ast.For):
            out |= set(st.names) | bound_in(st.body)
        elif isinstance(st, ast.If):
            out |= bound_in(st.then) | bound_in(st.orelse)
    return out


def per_pass(body: tuple[ast.Stmt, ...], layers: set[str]) -> int | None:
    """How many numbers one pass through `body` takes, when that is the same for every pass
    (nested loops over literals, branches that take the same count); None where it varies.
    `layers`: the names that are layer values here (applied by name, they take no number)."""
    counter = _PerPass(set(layers))
    return counter.body(body)


class _PerPass:
    def __init__(self, layers: set[str]) -> None:
        self.layers = layers

    def body(self, body: tuple[ast.Stmt, ...]) -> int | None:
        total = 0
        for s in body:
            n = self.stmt(s)
            if n is None:
                return None
            total += n
        return total

    def stmt(self, s: ast.Stmt) -> int | None:
        if isinstance(s, (ast.Bind, ast.Output)):
            return self.chain(s.chain) if s.chain is not None else 0
        if isinstance(s, ast.Let):
            if isinstance(s.value, ast.Call):
                self.layers.add(s.name)  # a layer value (or a list: a name never applied)
            return 0
        if isinstance(s, ast.If):
            then, orelse = self.body(s.then), self.body(s.orelse)
            return then if then == orelse else None
        if isinstance(s, ast.For):
            inner = self.body(s.body)
            if inner == 0 or inner is None:
                return inner
            trips = _literal_length(s.iterable)
            return None if trips is None else trips * inner
        return 0

    def chain(self, c: ast.Chain) -> int | None:
        total = 0
        for st in c.stages:
            name = st.callee[0] if len(st.callee) == 1 else None
            if st.label:
                if not st.label_parts:
                    self.layers.add(st.label)
                continue
            if st.args is None and name in self.layers:
                continue
            if st.repeat is None:
                total += 1
            elif _int_literal(st.repeat):
                total += st.repeat.value
            else:
                return None
        return total


def _literal_length(e: ast.Expr) -> int | None:
    if isinstance(e, ast.ListExpr):
        return len(e.items)
    if _is_range(e) and all(_int_literal(a.value) and a.name is None for a in e.args) and 1 <= len(e.args) <= 3:
        return len(range(*(a.value.value for a in e.args)))
    return None


def _is_range(e: ast.Expr) -> bool:
    return (isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "range" and all(a.name is None for a in e.args))


def _int_literal(e: ast.Expr) -> bool:
    return isinstance(e, ast.Literal) and type(e.value) is int
