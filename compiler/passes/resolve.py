"""Name resolution over the AST.

Assumes: a loaded `Program` (all imports parsed).
Guarantees: every module gets a symbol table (its defs, its top-level lets, its import
aliases, and the unaliased imports' definitions); every name in every block and network
body is checked statically: chain sources must be tensors bound above, callees must be
ops, blocks, networks or layer values, expression names must be known values. Mistakes
become diagnostics (with "did you mean"); defs containing them are listed in
`Resolved.broken` so later passes skip them instead of reporting the same error twice.
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field

from .. import messages
from ..diagnostics import Diagnostics
from ..names import reserved
from ..ops import OPS, spec_op
from ..source import Span
from ..syntax import ast
from ..syntax.desugar import step_defs
from ..syntax.load import Program
from ..syntax.visitor import StmtVisitor, bound_tensors
from .decorators import check_decorators
from ..builtins import BUILTINS
from ..ops.internal import INITIALIZERS


@dataclass(frozen=True)
class DefRef:
    """A block or network together with the module it was written in."""

    node: ast.Def
    module: str

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(frozen=True)
class LetRef:
    node: ast.Let
    module: str


@dataclass(frozen=True)
class TrainRef:
    """A `train` definition with the step networks it stands for (compiler/syntax/desugar.py)."""

    node: ast.Train
    module: str
    steps: tuple[tuple[ast.Step | None, DefRef], ...]

    @property
    def name(self) -> str:
        return self.node.name


@dataclass
class ModuleScope:
    path: str
    defs: dict[str, DefRef] = field(default_factory=dict)
    trains: dict[str, TrainRef] = field(default_factory=dict)
    lets: dict[str, LetRef] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> module path

    def value_names(self) -> set[str]:
        return set(self.defs) | set(self.lets) | set(self.aliases)


@dataclass(frozen=True)
class Resolved:
    program: Program
    scopes: dict[str, ModuleScope]
    broken: frozenset[int]  # id() of defs whose bodies hold name errors

    def networks(self, module: str | None = None) -> list[DefRef]:
        """Networks defined in `module` (default: the root file), in source order."""
        path = module or self.program.root
        return [DefRef(item, path) for item in self.program.modules[path].items
                if isinstance(item, ast.Def) and item.kind == "network"]

    def trains(self, module: str | None = None) -> list[TrainRef]:
        """Training definitions in `module` (default: the root file), in source order."""
        path = module or self.program.root
        return list(self.scopes[path].trains.values())

    def lookup_def(self, module: str, qualname: tuple[str, ...]) -> DefRef | None:
        scope = self.scopes[module]
        if len(qualname) == 1:
            return scope.defs.get(qualname[0])
        if len(qualname) == 2 and qualname[0] in scope.aliases:
            return self.scopes[scope.aliases[qualname[0]]].defs.get(qualname[1])
        return None


def resolve(program: Program, diags: Diagnostics) -> Resolved:
    """Build symbol tables for every module and check every def body."""
    scopes = {path: _own_scope(module, diags) for path, module in program.modules.items()}
    for path in program.modules:
        _add_imports(scopes, path, program, diags)
    broken: set[int] = set()
    for path, module in program.modules.items():
        for item in module.items:
            if isinstance(item, ast.Def):
                before = len(diags)
                check_decorators(item, diags)
                _BodyChecker(scopes[path], scopes, diags).check_def(item)
                if len(diags) > before:
                    broken.add(id(item))
            elif isinstance(item, ast.Train) and item.name in scopes[path].trains:
                before = len(diags)
                for step, ref in scopes[path].trains[item.name].steps:
                    _BodyChecker(scopes[path], scopes, diags).check_def(ref.node)
                    if len(diags) > before:
                        broken.add(id(ref.node))
    return Resolved(program, scopes, frozenset(broken))


def _own_scope(module: ast.Module, diags: Diagnostics) -> ModuleScope:
    scope = ModuleScope(module.path)
    first: dict[str, ast.Def | ast.Let] = {}
    for item in module.items:
        if isinstance(item, ast.Import):
            continue
        if isinstance(item, ast.Train):
            _add_train(scope, item, first, diags)
            continue
        name = item.name
        span = item.name_span if isinstance(item, ast.Def) else item.span
        if name in first:
            prev = first[name]
            diags.add(messages.duplicate_definition(span, name, prev.name_span if isinstance(prev, (ast.Def, ast.Train)) else prev.span))
            continue
        if isinstance(item, ast.Def) and name in OPS:
            diags.add(messages.shadows_op(span, name))
            continue
        first[name] = item
        if isinstance(item, ast.Def):
            scope.defs[name] = DefRef(item, module.path)
        else:
            scope.lets[name] = LetRef(item, module.path)
    return scope


def _add_train(scope: ModuleScope, train: ast.Train, first: dict, diags: Diagnostics) -> None:
    """A training definition's name and its step networks' names share the file's namespace."""
    steps = step_defs(train)
    for _, d in steps:
        if d.name in first:
            prev = first[d.name]
            diags.add(messages.duplicate_definition(d.name_span, d.name, prev.name_span if isinstance(prev, (ast.Def, ast.Train)) else prev.span))
            return
    if train.name in first and all(d.name != train.name for _, d in steps):
        prev = first[train.name]
        diags.add(messages.duplicate_definition(train.name_span, train.name, prev.name_span if isinstance(prev, (ast.Def, ast.Train)) else prev.span))
        return
    first[train.name] = train
    refs = []
    for step, d in steps:
        first[d.name] = d
        ref = DefRef(d, scope.path)
        scope.defs[d.name] = ref
        refs.append((step, ref))
    scope.trains[train.name] = TrainRef(train, scope.path, tuple(refs))


def _add_imports(scopes: dict[str, ModuleScope], path: str, program: Program, diags: Diagnostics) -> None:
    scope = scopes[path]
    own = {**scope.defs}
    for imp, target in program.imports[path]:
        if imp.alias:
            scope.aliases[imp.alias] = target
            continue
        for name, ref in _exported(scopes[target]).items():
            existing = scope.defs.get(name)
            if existing is not None and existing.node is not ref.node:
                if name not in own:  # a local definition deliberately shadows an import
                    diags.add(messages.duplicate_definition(imp.span, name, existing.node.name_span))
                continue
            scope.defs[name] = ref
        for name, let in scopes[target].lets.items():
            scope.lets.setdefault(name, let)


def _exported(scope: ModuleScope) -> dict[str, DefRef]:
    """What an import of the module brings: its own blocks and networks (not its step networks)."""
    steps = {ref.name for t in scope.trains.values() for _, ref in t.steps}
    return {name: ref for name, ref in scope.defs.items() if ref.module == scope.path and name not in steps}


class _BodyChecker(StmtVisitor[None]):
    """Walks one def's statements in order, tracking what each local name holds in `env`
    ("tensor" or "value"); a loop or branch body is checked in its own copy of it."""

    def __init__(self, scope: ModuleScope, scopes: dict[str, ModuleScope], diags: Diagnostics) -> None:
        self.scope = scope
        self.scopes = scopes
        self.diags = diags
        self.later: dict[str, ast.Stmt] = {}
        self.env: dict[str, str] = {}

    def declared(self, name: str, kind: str, span: Span) -> None:
        """E0228 for a name the generated code could not hold (compiler/names.py)."""
        why = reserved(name, kind)
        if why is not None:
            self.diags.add(messages.reserved_name(span, name, kind, why))

    def check_def(self, d: ast.Def) -> None:
        self.env = {}
        self.declared(d.name, d.kind, d.name_span)
        for p in d.params:
            self.declared(p.name, "parameter", p.span)
            if p.default is not None:
                self.expr(p.default, self.env)
            self.env[p.name] = "value"
        self.later = bound_tensors(d.body)
        self.visit_body(d.body)

    def _body_in(self, body: tuple[ast.Stmt, ...], env: dict[str, str]) -> None:
        """Check `body` with `env` as its names; the caller's env is restored afterwards."""
        outer, self.env = self.env, env
        try:
            self.visit_body(body)
        finally:
            self.env = outer

    def visit_input(self, s: ast.Input) -> None:
        self.declared(s.name, "input", s.span)
        if s.type is not None:
            for dim in s.type.dims:
                if not isinstance(dim, ast.DimExample):
                    self.expr(dim, self.env, dims=True)
        self.env[s.name] = "tensor"

    def visit_param_tensor(self, s: ast.ParamTensor) -> None:
        self.declared(s.name, "label", s.span)  # a parameter tensor is a module attribute too
        for dim in s.type.dims:
            if not isinstance(dim, ast.DimExample):
                self.expr(dim, self.env, dims=True)
        init = s.init
        head = init.func if isinstance(init, ast.Call) else init
        if isinstance(head, ast.Name) and head.id in INITIALIZERS and head.id not in self.env:
            for a in init.args if isinstance(init, ast.Call) else ():
                self.expr(a.value, self.env)
        elif isinstance(head, ast.Name) and head.id not in self.env and not self._known_value(head.id):
            self.diags.add(messages.bad_initializer(head.span, s.name, f"`{head.id}`", list(INITIALIZERS)))
        elif init is not None:
            self.expr(init, self.env)
        self.env[s.name] = "tensor"

    def visit_output(self, s: ast.Output) -> None:
        self.declared(s.name, "output", s.span)
        if s.chain is not None:
            self.chain(s.chain, self.env)
            self.env[s.name] = "tensor"
        elif self.env.get(s.name) != "tensor":
            self.tensor_name(ast.Name(s.name, s.span), self.env)

    def visit_let(self, s: ast.Let) -> None:
        self.declared(s.name, "let", s.span)
        self.expr(s.value, self.env)
        self.env[s.name] = "value"

    def visit_bind(self, s: ast.Bind) -> None:
        for n in s.names:
            self.declared(n, "name", s.span)
        self.chain(s.chain, self.env)
        self.env.update({n: "tensor" for n in s.names})

    def visit_for(self, s: ast.For) -> None:
        for n in s.names:
            self.declared(n, "loop variable", s.span)
        env = self.env
        self.expr(s.iterable, env)
        inner = {**env, **{n: "value" for n in s.names}}
        self._body_in(s.body, inner)
        env.update({k: v for k, v in inner.items() if k not in s.names or k in env})

    def visit_if(self, s: ast.If) -> None:
        env = self.env
        self.expr(s.cond, env)
        then, orelse = dict(env), dict(env)
        self._body_in(s.then, then)
        self._body_in(s.orelse, orelse)
        env.update(then)
        env.update(orelse)

    def visit_assert(self, s: ast.Assert) -> None:
        self.expr(s.cond, self.env)

    def chain(self, c: ast.Chain, env: dict[str, str]) -> None:
        for src in c.sources:
            self.tensor_name(src, env)
        for stage in c.stages:
            self.callee(stage, env)
            for arg in stage.args or ():
                self.expr(arg.value, env)
            if stage.repeat is not None:
                self.expr(stage.repeat, env)
            for part in stage.label_parts:
                if not isinstance(part, str):
                    self.expr(part, env)
            if stage.label and not stage.label_parts:  # a numbered label names weights, not a layer value
                self.declared(stage.label, "label", stage.span)
                env[stage.label] = "value"

    def tensor_name(self, name: ast.Name, env: dict[str, str]) -> None:
        kind = env.get(name.id)
        if kind == "tensor":
            return
        if kind is not None or name.id in self.scope.value_names():
            self.diags.add(messages.not_a_tensor(name.span, name.id))
        elif name.id in self.later:
            self.diags.add(messages.used_before_definition(name.span, name.id, self.later[name.id].span))
        else:
            tensors = [k for k, v in env.items() if v == "tensor"]
            self.diags.add(messages.undefined_name(name.span, name.id, tensors, "tensor"))

    def callee(self, stage: ast.Stage, env: dict[str, str]) -> None:
        qual = stage.callee
        head = qual[0]
        if len(qual) == 1:
            kind = env.get(head)
            if kind == "tensor":
                self.diags.add(messages.not_callable_layer(stage.callee_span, head))
            elif kind is None and spec_op(head) is None and head not in self.scope.defs and head not in self.scope.lets:
                candidates = [*OPS, *self.scope.defs, *(k for k, v in env.items() if v == "value")]
                self.diags.add(messages.unknown_callee(stage.callee_span, head, candidates))
            return
        target = self.scope.aliases.get(head)
        if target is None or len(qual) != 2 or qual[1] not in _exported(self.scopes[target]):
            candidates = [f"{a}.{n}" for a, t in self.scope.aliases.items() for n in _exported(self.scopes[t])]
            self.diags.add(messages.unknown_callee(stage.callee_span, ".".join(qual), candidates))

    def expr(self, e: ast.Expr, env: dict[str, str], dims: bool = False) -> None:
        if isinstance(e, ast.Literal):  # checked here too: a default a caller overrides is never evaluated
            if isinstance(e.value, float) and not math.isfinite(e.value):
                self.diags.add(messages.out_of_range(e.span, "float overflow: the literal is too large for a 64-bit float"))
        elif isinstance(e, ast.Name):
            kind = env.get(e.id)
            if kind == "tensor":
                self.diags.add(messages.not_a_value(e.span, e.id))
            elif kind is None and not dims and not self._known_value(e.id):
                candidates = [*(k for k, v in env.items() if v == "value"), *self.scope.value_names(), *BUILTINS]
                self.diags.add(messages.undefined_name(e.span, e.id, candidates))
        elif isinstance(e, ast.Attr):
            if isinstance(e.obj, ast.Name) and e.obj.id in self.scope.aliases:
                return
            self.expr(e.obj, env, dims)
        elif isinstance(e, ast.Call):
            if isinstance(e.func, ast.Name) and e.func.id not in env and not self._known_value(e.func.id):
                self.diags.add(messages.unknown_function(e.func.span, e.func.id, sorted(BUILTINS),
                                                         [*self.scope.defs, *OPS]))
            else:
                self.expr(e.func, env, dims)
            for a in e.args:
                self.expr(a.value, env, dims)
        elif isinstance(e, ast.ListExpr):
            for item in e.items:
                self.expr(item, env, dims)
        elif isinstance(e, ast.BinOp):
            self.expr(e.left, env, dims)
            self.expr(e.right, env, dims)
        elif isinstance(e, ast.UnaryOp):
            self.expr(e.operand, env, dims)
        elif isinstance(e, ast.Index):
            self.expr(e.obj, env, dims)
            self.expr(e.index, env, dims)
        elif isinstance(e, ast.IfExpr):
            for part in (e.cond, e.then, e.orelse):
                self.expr(part, env, dims)

    def _known_value(self, name: str) -> bool:
        return name in self.scope.value_names() or name in BUILTINS or spec_op(name) is not None

