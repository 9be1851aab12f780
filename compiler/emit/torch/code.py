"""The emitter's model of a method body: a tree of Python statements, cleaned up on structure.

The class writer adds lines at an indentation level (`Lines.add`, `Lines.level`), as it walks the
spec; `Lines.tree()` turns them into statements whose compound headers (`for ...:`, `if ...:`,
`else:`) own their bodies. The clean-ups work on that tree and on each statement's Python `ast`,
never on text patterns:
  - `drop_dead_stores`: `name = ...` for emitter-made names (running sizes, forward-side lets)
    that no other statement reads;
  - `prune_empty_branches`: `if` / `else` whose body is only `pass` (a branch with work in one
    method only);
  - `names_read`, `self_attributes_read`: what a body reads, e.g. which parameters `forward` needs.
Each clean-up that repeats until nothing changes raises `FixedPointError` if it does not settle.
"""
from __future__ import annotations

import ast as py
import io
import tokenize
from dataclasses import dataclass, field
from typing import Iterable, Iterator

MAX_ROUNDS = 100  # a clean-up that needs more rounds than a body has statements is a bug


class FixedPointError(RuntimeError):
    """A clean-up kept changing the code: an emitter bug, never a user mistake."""


@dataclass
class Stmt:
    """One line of Python (without indentation; it may end with a `# comment`) and, for a
    compound header, the statements of its body."""

    text: str
    body: list[Stmt] = field(default_factory=list)

    @property
    def code(self) -> str:
        """The line without its trailing comment."""
        return strip_comment(self.text)

    @property
    def is_header(self) -> bool:
        return self.code.endswith(":")

    def node(self) -> py.stmt | None:
        """The statement's Python AST (a header is parsed with an empty body); None for `else:`."""
        code = self.code
        if code in ("else:", "pass"):
            return None
        source = f"{code}\n    pass" if self.is_header else code
        return py.parse(source).body[0]

    def is_pass_only(self) -> bool:
        return all(s.code == "pass" for s in self.body)


class Lines:
    """A method body under construction: lines at indentation levels."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str]] = []
        self.level = 0

    def add(self, text: str) -> None:
        self.entries.append((self.level, text))

    def tree(self) -> list[Stmt]:
        """The statements, headers owning the deeper lines after them; empty bodies get `pass`."""
        root: list[Stmt] = []
        stack: list[tuple[int, list[Stmt]]] = [(-1, root)]
        for level, text in self.entries:
            while stack[-1][0] >= level:
                stack.pop()
            stmt = Stmt(text)
            stack[-1][1].append(stmt)
            if stmt.is_header:
                stack.append((level, stmt.body))
        _fill_empty(root)
        return root


def _fill_empty(body: list[Stmt]) -> None:
    for s in body:
        if s.is_header:
            if not s.body:
                s.body.append(Stmt("pass"))
            _fill_empty(s.body)


def strip_comment(line: str) -> str:
    """`line` without a trailing `# ...` comment (a `#` inside a string stays)."""
    if "#" not in line:
        return line.rstrip()
    tokens = tokenize.generate_tokens(io.StringIO(line).readline)
    try:
        for tok in tokens:
            if tok.type == tokenize.COMMENT:
                return line[:tok.start[1]].rstrip()
    except tokenize.TokenError:  # an open bracket: the header of a multi-line call; keep the line
        pass
    return line.rstrip()


def render(body: list[Stmt], level: int = 0) -> list[str]:
    """The statements as indented lines."""
    out = []
    for s in body:
        out.append("    " * level + s.text)
        out.extend(render(s.body, level + 1))
    return out


def walk(body: Iterable[Stmt]) -> Iterator[Stmt]:
    for s in body:
        yield s
        yield from walk(s.body)


# --- what a statement reads and writes -------------------------------------------------------

def _loads(node: py.AST | None) -> set[str]:
    if node is None:
        return set()
    return {n.id for n in py.walk(node) if isinstance(n, py.Name) and isinstance(n.ctx, py.Load)}


def names_read(body: Iterable[Stmt]) -> set[str]:
    """Every plain name some statement of `body` reads (at any depth)."""
    out: set[str] = set()
    for s in walk(body):
        out |= _loads(s.node())
    return out


def self_attributes_read(body: Iterable[Stmt]) -> set[str]:
    """`x` for every `self.x` read in `body` (at any depth)."""
    out: set[str] = set()
    for s in walk(body):
        node = s.node()
        if node is None:
            continue
        for n in py.walk(node):
            if isinstance(n, py.Attribute) and isinstance(n.value, py.Name) and n.value.id == "self" \
                    and isinstance(n.ctx, py.Load):
                out.add(n.attr)
    return out


def module_names(source: str) -> set[str]:
    """Every plain name a module's source reads (`torch`, `F`, `math`, a helper class)."""
    return _loads(py.parse(source))


def expression_names(expr: str) -> set[str]:
    """The plain names an expression reads: `in_channels + growth` -> {in_channels, growth}."""
    return _loads(py.parse(expr, mode="eval"))


def expression_attributes(expr: str) -> set[str]:
    """Every attribute chain an expression reads, as text: `self.layer1.out_channels`."""
    return {py.unparse(n) for n in py.walk(py.parse(expr, mode="eval")) if isinstance(n, py.Attribute)}


def _stored(s: Stmt) -> str | None:
    """The name `s` assigns when it is `name = ...` (one plain target), else None."""
    node = s.node()
    if isinstance(node, py.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], py.Name):
        return node.targets[0].id
    return None


# --- clean-ups --------------------------------------------------------------------------------

def drop_dead_stores(body: list[Stmt], candidates: set[str]) -> list[Stmt]:
    """Remove `name = ...` (name in `candidates`) that no other statement reads, until none is
    left; a loop left empty goes too, a branch left empty keeps `pass`."""
    for _ in range(MAX_ROUNDS):
        dead = _dead(body, candidates)
        if not dead:
            return body
        body = _without(body, dead)
    raise FixedPointError(f"dead-store removal did not settle in {MAX_ROUNDS} rounds")


def _dead(body: list[Stmt], candidates: set[str]) -> set[int]:
    """ids of the dead stores: their name is read by no statement but themselves."""
    stores = [(s, _stored(s)) for s in walk(body)]
    reads: dict[int, set[str]] = {id(s): _loads(s.node()) for s, _ in stores}
    dead = set()
    for s, name in stores:
        if name in candidates and not any(name in r for k, r in reads.items() if k != id(s)):
            dead.add(id(s))
    return dead


def _without(body: list[Stmt], dead: set[int]) -> list[Stmt]:
    out = []
    for s in body:
        if id(s) in dead:
            continue
        if s.is_header:
            s.body = _without(s.body, dead)
            if not s.body:
                if s.code.startswith(("for ", "while ")):
                    continue
                s.body = [Stmt("pass")]
        out.append(s)
    return out


_NEGATED = {py.Eq: py.NotEq, py.NotEq: py.Eq, py.Lt: py.GtE, py.GtE: py.Lt, py.Gt: py.LtE, py.LtE: py.Gt,
            py.Is: py.IsNot, py.IsNot: py.Is, py.In: py.NotIn, py.NotIn: py.In}


def negate(cond: str) -> str:
    """`a == b` -> `a != b`, `not c` -> `c`, anything else -> `not (...)`."""
    node = py.parse(cond, mode="eval").body
    if isinstance(node, py.Compare) and len(node.ops) == 1:
        return py.unparse(py.Compare(node.left, [_NEGATED[type(node.ops[0])]()], node.comparators))
    if isinstance(node, py.UnaryOp) and isinstance(node.op, py.Not):
        return py.unparse(node.operand)
    return f"not ({cond})"


def prune_empty_branches(body: list[Stmt]) -> list[Stmt]:
    """`if c: pass` goes, `else: pass` goes, `if c: pass / else: B` becomes `if not (c): B`."""
    out: list[Stmt] = []
    i = 0
    while i < len(body):
        s = body[i]
        if s.is_header:
            s.body = prune_empty_branches(s.body)
        nxt = body[i + 1] if i + 1 < len(body) else None
        has_else = nxt is not None and nxt.code in ("else:",) or (nxt is not None and nxt.code.startswith("elif "))
        if s.code == "else:" and s.is_pass_only():
            i += 1
            continue
        if s.code.startswith("if ") and s.is_pass_only():
            if has_else and nxt.code == "else:":
                nxt.body = prune_empty_branches(nxt.body)
                if nxt.is_pass_only():
                    i += 2
                    continue
                out.append(Stmt(f"if {negate(s.code[3:-1])}:", nxt.body))
                i += 2
                continue
            if not has_else:
                i += 1
                continue
        out.append(s)
        i += 1
    return out


# --- rewrites -----------------------------------------------------------------------------------

def rewrite(s: Stmt, transformer: py.NodeTransformer) -> None:
    """Put one statement's code through an `ast` transformer; its comment and body stay."""
    node = s.node()
    if node is None:
        return
    code = py.unparse(py.fix_missing_locations(transformer.visit(node))).split("\n", 1)[0]
    s.text = code + s.text[len(s.code):]


class _AppendNumbered(py.NodeTransformer):
    """`self.add_module(str(i), X)` -> `self.append(X)`."""

    def visit_Call(self, node: py.Call) -> py.expr:
        f = node.func
        if isinstance(f, py.Attribute) and f.attr == "add_module" and isinstance(f.value, py.Name) \
                and f.value.id == "self" and len(node.args) == 2:
            return py.Call(py.Attribute(f.value, "append", py.Load()), [node.args[1]], [])
        return node


class _NumberedLayer(py.NodeTransformer):
    """`getattr(self, str(i))` -> `layer`."""

    def __init__(self, var: str) -> None:
        self.var = var

    def visit_Call(self, node: py.Call) -> py.expr:
        self.generic_visit(node)
        if py.unparse(node) == f"getattr(self, str({self.var}))":
            return py.Name("layer", py.Load())
        return node


def as_module_list(init: list[Stmt], forward: list[Stmt], var: str) -> None:
    """A class whose only submodules are numbered by `for var in range(n)` from 0, rewritten as an
    `nn.ModuleList`: `self.append(...)` in __init__, `for layer in self:` in forward."""
    for s in walk(init):
        rewrite(s, _AppendNumbered())
    for s in walk(forward):
        if s.code.startswith(f"for {var} in "):
            for inner in walk(s.body):
                rewrite(inner, _NumberedLayer(var))
            head = f"for {var}, layer in enumerate(self):" if var in names_read(s.body) else "for layer in self:"
            s.text = head + s.text[len(s.code):]


def unread_loop_variables(body: list[Stmt]) -> None:
    """`for i in range(n):` whose body never reads `i` becomes `for _ in range(n):`."""
    for s in walk(body):
        node = s.node()
        if isinstance(node, py.For) and isinstance(node.target, py.Name) and node.target.id != "_" \
                and node.target.id not in names_read(s.body):
            s.text = "for _" + s.text[len(f"for {node.target.id}"):]
