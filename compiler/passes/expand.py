"""Block expansion: elaborate one network into the flat graph IR.

Assumes: a `Resolved` program (symbol tables built, static name errors already reported).
Guarantees: parameters are evaluated; blocks, networks, `for` loops, `if`s and `* n`
repetitions are expanded; every op application becomes a `Node` with validated, sorted
attributes, a unique dotted path and the span of the stage that made it. Layer values
applied twice (`let tower = Tower(64)`, labels, block arguments) share one weight scope;
`tie=layer` shares a weight tensor. Shapes are not computed here (see `infer_shapes`).

Naming follows `nn.Sequential`: unlabeled stages of a scope are numbered 0, 1, 2, ... in
the order they run; a label names its layer; `label: X * n` names copies label.0, label.1.
A copy's outputs take the place of the next copy's first inputs; the other inputs go unchanged
to every copy (`(x, memory) -> DecoderLayer(...) * 6`). A numbered label (`denselayer{i + 1}`)
is evaluated where its stage runs.

Errors are reported and the offending tensors become `POISON`, so one run reports many
independent mistakes without cascades.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Mapping

from .. import limits, messages
from ..diagnostics import Diagnostics
from ..limits import Budget, OverBudget
from ..ir.dims import Dim
from ..ir.graph import BlockCall, Frame, Graph, Node, Value
from ..ir.types import DTYPE_BYTES, TensorType
from ..ops import OPS, ArgError, OpDef, spec_op
from ..ops.internal import CONSTANT, INITIALIZERS
from ..ops.table import REQUIRED
from ..source import Span
from ..syntax import ast
from ..syntax.visitor import StmtVisitor, StmtWalker
from .evaluate import Evaluator, describe, is_int
from .resolve import DefRef, Resolved
from .values import POISON, Abort, Fail, Layer, Scope, Tensor, join

MAX_DEPTH = 64
_LABEL_PIECE = re.compile(r"[A-Za-z0-9_]+")


def expand(resolved: Resolved, network: DefRef, diags: Diagnostics,
           params: Mapping[str, Any] | None = None, budget: Budget | None = None) -> Graph | None:
    """Expand `network` into a graph; None if its definition is broken beyond use. `params`
    (checked names, values as the evaluator's: lists as tuples) replace the network's defaults;
    the defaults after them are computed from them (`d_ff=4*d`). `budget`: the compilation's
    (compiler/limits.py), shared with its other expansions; a fresh one if not given."""
    return _Expander(resolved, diags, budget or Budget()).network(network, params or {})


class _Expander(Evaluator):
    def __init__(self, resolved: Resolved, diags: Diagnostics, budget: Budget) -> None:
        self.r = resolved
        self.diags = diags
        self.budget = budget
        self.values: list[Value] = []
        self.nodes: list[Node] = []
        self.layer_paths: dict[int, tuple[str, Span]] = {}  # layer uid -> (weight path, first use)
        self.reuses: dict[int, int] = {}
        self.stack: list[tuple[int, tuple]] = []
        self.let_cache: dict[tuple[str, str], Any] = {}
        self.let_active: set[tuple[str, str]] = set()
        self.examples: dict[str, int] = {}
        self.calls: list[BlockCall] = []

    # --- networks --------------------------------------------------------------------------
    def network(self, ref: DefRef, params: Mapping[str, Any]) -> Graph | None:
        d = ref.node
        if id(d) in self.r.broken:
            return None
        scope = Scope("", "", ref.module, {}, ())
        try:
            for p in d.params:
                if p.name in params:
                    scope.env[p.name] = params[p.name]
                    continue
                if p.default is None:
                    self.diags.add(messages.missing_network_param(p.span, d.name, p.name))
                    raise Fail
                scope.env[p.name] = self.eval(p.default, scope)
        except Fail:
            return None
        graph_inputs: list[tuple[str, int]] = []
        self.graph_inputs = graph_inputs
        try:
            self.stmts(d.body, scope)
        except Abort:
            return None
        outputs = [(n, t.vid) for n, t in scope.outputs if isinstance(t, Tensor)]
        if not _declares_output(d.body):
            self.diags.add(messages.missing_output(d.name_span, d.name))
        self.examples.setdefault("B", 1)
        return Graph(d.name, tuple(graph_inputs), tuple(outputs), tuple(self.nodes), tuple(self.values),
                     tuple(sorted(self.examples.items())), d.span, tuple(self.calls),
                     params=tuple((p.name, scope.env[p.name]) for p in d.params))

    def graph_input(self, s: ast.Input, scope: Scope) -> Any:
        if s.type is None:
            self.diags.add(messages.missing_input_type(s.span, s.name))
            return POISON
        try:
            dtype, dims = self.tensor_type(s.type, scope)
        except Fail:
            return POISON
        shape = tuple(Dim.sym(x) if isinstance(x, str) else Dim.of(x) for x in dims)
        vid = self.new_value(s.name, TensorType(dtype, shape), None, s.span)
        self.graph_inputs.append((s.name, vid))
        return Tensor(vid)

    def tensor_type(self, t: ast.TensorTypeExpr, scope: Scope) -> tuple[str, tuple[int | str | Dim, ...]]:
        """Dtype and dims: ints, symbol names (`B`), or symbolic expressions (`16*h`) as Dims."""
        dtype = t.dtype or "f32"
        if dtype not in DTYPE_BYTES:
            self.diags.add(messages.unknown_dtype(t.span, dtype, sorted(DTYPE_BYTES)))
            raise Fail
        dims: list[int | str | Dim] = []
        for dim in t.dims:
            if isinstance(dim, ast.DimExample):
                if not 1 <= dim.example <= limits.MAX_DIM:
                    self.error(messages.size_out_of_range(dim.span, f"an example size of {dim.example:,}; a dimension "
                                                          f"is between 1 and {limits.MAX_DIM:,} (2^31 - 1)"))
                self.examples.setdefault(dim.name, dim.example)
                dims.append(dim.name)
                continue
            value = self.dim_expr(dim, scope)
            if isinstance(value, Dim) and len(value.terms) == 1 and value.terms[0][1] == 1 \
                    and len(value.terms[0][0]) == 1 and isinstance(value.terms[0][0][0], str):
                value = value.terms[0][0][0]  # a plain symbol
            if is_int(value) and value < 1:
                self.diags.add(messages.bad_dimension(dim.span, value))
                raise Fail
            if is_int(value) and value > limits.MAX_DIM:
                self.error(messages.size_out_of_range(dim.span, f"a dimension of {value:,}; a dimension is at most "
                                                      f"{limits.MAX_DIM:,} (2^31 - 1)"))
            dims.append(value)
        return dtype, tuple(dims)

    def dim_expr(self, e: ast.Expr, scope: Scope) -> int | Dim:
        """A dimension expression: names that are not values are symbols; + - * // combine them."""
        if isinstance(e, ast.Name) and e.id not in scope.env and e.id not in self.r.scopes[scope.module].lets:
            return Dim.sym(e.id)
        if isinstance(e, ast.BinOp) and e.op in ("+", "-", "*", "//"):
            left, right = self.dim_expr(e.left, scope), self.dim_expr(e.right, scope)
            if isinstance(left, Dim) or isinstance(right, Dim):
                if e.op == "//" and (isinstance(right, Dim) or right <= 0):
                    self.diags.add(messages.bad_dimension_division(e.span))
                    raise Fail
                return {"+": left + right, "-": left - right, "*": left * right}.get(e.op) if e.op != "//" \
                    else Dim.of(left) // right
        value = self.eval(e, scope)
        if not is_int(value):
            self.diags.add(messages.bad_dimension(e.span, value))
            raise Fail
        return value

    # --- statements ------------------------------------------------------------------------
    def stmts(self, body: tuple[ast.Stmt, ...], scope: Scope) -> None:
        """Run `body` in `scope`; a failed statement poisons the names it would have bound."""
        runner = _Statements(self, scope)
        for s in body:
            self.spend(s.span)
            try:
                runner.visit(s)
            except Abort:
                raise
            except Fail:
                for name in s.accept(_BOUND_NAMES):
                    scope.env[name] = POISON

    def output(self, s: ast.Output, scope: Scope) -> None:
        outs = self.chain(s.chain, scope) if s.chain else [scope.env.get(s.name, POISON)]
        if len(outs) != 1:
            self.diags.add(messages.wrong_output_count(s.chain.span, 1, len(outs)))
            raise Fail
        value = outs[0]
        if isinstance(value, Tensor):
            self.name_value(value, s.name)
        scope.env[s.name] = value
        scope.outputs.append((s.name, value))

    def bind(self, s: ast.Bind, scope: Scope) -> None:
        outs = self.chain(s.chain, scope)
        if len(outs) != len(s.names) and POISON not in outs:
            callee, names = self._producer(outs)
            self.diags.add(messages.wrong_output_count(s.chain.span, len(s.names), len(outs), callee, names))
            raise Fail
        for name, value in zip(s.names, outs if len(outs) == len(s.names) else [POISON] * len(s.names)):
            if isinstance(value, Tensor):
                self.name_value(value, name)
            scope.env[name] = value

    def _producer(self, outs: list) -> tuple[str | None, list[str]]:
        """The block or network whose outputs `outs` are (the chain's last stage), and their names."""
        vids = tuple(t.vid for t in outs if isinstance(t, Tensor))
        for call in reversed(self.calls):
            if call.outputs == vids:
                return call.frame.block, [self.values[v].name or "?" for v in vids]
        return None, []

    def check_assert(self, s: ast.Assert, scope: Scope) -> None:
        if not self.eval(s.cond, scope):
            self.diags.add(messages.assertion_failed(s.cond.span, s.message))
            raise Abort

    def for_loop(self, s: ast.For, scope: Scope) -> None:
        items = self.eval(s.iterable, scope)
        if not isinstance(items, tuple):
            self.diags.add(messages.for_needs_list(s.iterable.span, items))
            raise Fail
        for item in items:
            if len(s.names) == 1:
                scope.env[s.names[0]] = item
            elif isinstance(item, tuple) and len(item) == len(s.names):
                scope.env.update(zip(s.names, item))
            else:
                self.diags.add(messages.cannot_unpack(s.span, item, len(s.names)))
                raise Fail
            self.stmts(s.body, scope)

    def block_input(self, s: ast.Input, scope: Scope) -> Any:
        value = scope.inputs.pop(0) if scope.inputs else POISON
        if s.type is None or not isinstance(value, Tensor):
            return value
        dtype, dims = self.tensor_type(s.type, scope)
        dims = tuple(str(d) if isinstance(d, Dim) else d for d in dims)
        attrs = (("dims", dims), ("dtype", s.type.dtype), ("input", s.name))
        (out,) = self.add_node(OPS["expect"], attrs, [value], join(scope.path, f"{s.name}:type"), "", (), s.span, scope)
        return out

    # --- parameter tensors -----------------------------------------------------------------
    def param_tensor(self, s: ast.ParamTensor, scope: Scope) -> Tensor:
        """A `parameter` node: its weight is named `s.name` in the scope's weights, like a label."""
        if s.name in scope.labels:
            self.diags.add(messages.duplicate_label(s.span, s.name, scope.path or "the network"))
            raise Fail
        dtype, dims = self.tensor_type(s.type, scope)
        shape = tuple(Dim.sym(x) if isinstance(x, str) else Dim.of(x) for x in dims)
        attrs = (("dims", shape), ("dtype", dtype), ("init", self.initializer(s, scope)), ("name", s.name))
        scope.labels.add(s.name)
        (out,) = self.add_node(OPS["parameter"], attrs, [], join(scope.path, s.name), scope.weights, (), s.span, scope)
        self.name_value(out, s.name)
        return out

    def initializer(self, s: ast.ParamTensor, scope: Scope) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """(kind, sorted arguments): `zeros` without an init, `normal(std=0.02)` bound and checked
        like an op's arguments, or a number as ("constant", (("value", v),))."""
        e = s.init
        head = e.func if isinstance(e, ast.Call) else e
        if e is None:
            return "zeros", ()
        if isinstance(head, ast.Name) and head.id in INITIALIZERS and head.id not in scope.env:
            init = INITIALIZERS[head.id]
            positional = [(a, self.eval(a.value, scope)) for a in e.args if a.name is None] \
                if isinstance(e, ast.Call) else []
            keyword = {}
            for a in e.args if isinstance(e, ast.Call) else ():
                if a.name is not None:
                    if a.name in keyword:
                        self.error(messages.duplicate_argument(a.span, init.name, a.name))
                    keyword[a.name] = (a, self.eval(a.value, scope))
            args = self.bind_op(init, positional, keyword, e.span)
            problem = init.check(dict(args))
            if problem is not None:
                self.error(messages.bad_argument(e.span, init.name, *problem))
            return init.name, args
        value = self.eval(e, scope)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(messages.bad_initializer(e.span, s.name, describe(value), list(INITIALIZERS)))
        return CONSTANT, (("value", float(value)),)

    # --- chains and stages -----------------------------------------------------------------
    def chain(self, c: ast.Chain, scope: Scope) -> list[Any]:
        current: list[Any] = []
        for src in c.sources:
            value = scope.env.get(src.id, POISON)
            if src.id not in scope.env:
                self.diags.add(messages.undefined_name(src.span, src.id, [k for k, v in scope.env.items()
                                                                            if isinstance(v, Tensor)], "tensor"))
            current.append(value)
        for stage in c.stages:
            current = self.stage(stage, current, scope)
        return current

    def stage(self, stage: ast.Stage, inputs: list[Any], scope: Scope) -> list[Any]:
        label = self.label(stage, scope)
        if label and label in scope.labels:
            self.diags.add(messages.duplicate_label(stage.span, label, scope.path or "the network"))
            raise Fail
        repeat = 1 if stage.repeat is None else self.eval(stage.repeat, scope)
        if not is_int(repeat) or repeat < 0:
            self.diags.add(messages.bad_repeat(stage.repeat.span, repeat))
            raise Fail
        if repeat > limits.MAX_REPEAT:
            self.error(messages.out_of_range(stage.repeat.span, f"a repetition of {repeat:,} copies; a stage "
                                             f"is repeated at most {limits.MAX_REPEAT:,} times"))
        shared = self.shared_layer(stage, scope)
        outs = inputs
        for i in range(repeat):
            if i:  # a copy's outputs feed the next one's first inputs; its other inputs stay (`(x, memory)`)
                outs = outs + inputs[len(outs):]
            layer = shared or self.make_layer(self.callee(stage, scope), stage.args or (), stage.span, scope)
            if label:
                name = label if stage.repeat is None else f"{label}.{i}"  # `* n`: a Sequential, n = 1 too
            elif shared is not None:
                name = stage.callee[0]
            else:
                name = str(scope.counter)
                scope.counter += 1
            outs = self.apply(layer, outs, name, stage, scope)
            if label and i == 0 and not stage.label_parts:  # a numbered label binds no layer value
                scope.env[label] = layer
        if label:
            scope.labels.add(label)
        return outs

    def label(self, stage: ast.Stage, scope: Scope) -> str | None:
        """The stage's label; a numbered one (`denselayer{i + 1}`) evaluated here: each piece in
        braces must be an integer or a string of letters, digits and `_`."""
        if not stage.label_parts:
            return stage.label
        pieces = []
        for part in stage.label_parts:
            value = part if isinstance(part, str) else self.eval(part, scope)
            if not (is_int(value) or isinstance(value, str)) or not _LABEL_PIECE.fullmatch(str(value)):
                self.error(messages.bad_label_piece(part.span, stage.label, describe(value)))
            pieces.append(str(value))
        return "".join(pieces)

    def shared_layer(self, stage: ast.Stage, scope: Scope) -> Layer | None:
        """The layer value a stage names (`-> tower`), or None for a fresh op or block."""
        if len(stage.callee) != 1:
            return None
        name = stage.callee[0]
        value = scope.env[name] if name in scope.env else self.module_let(scope.module, name)
        if value is None:
            return None
        if value is POISON:
            raise Fail
        if not isinstance(value, Layer) and (spec_op(name) is not None or self.r.lookup_def(scope.module, (name,))):
            return None  # a parameter named like an op (`dropout=0.1`) does not hide the op as a callee
        if not isinstance(value, Layer):
            self.diags.add(messages.not_a_layer(stage.callee_span, name, describe(value)))
            raise Fail
        if stage.args is not None:
            self.diags.add(messages.layer_takes_no_args(stage.span, name))
            raise Fail
        return value

    def callee(self, stage: ast.Stage, scope: Scope) -> OpDef | DefRef:
        if len(stage.callee) == 1 and spec_op(stage.callee[0]) is not None:
            return OPS[stage.callee[0]]
        ref = self.r.lookup_def(scope.module, stage.callee)
        if ref is None:
            raise Fail  # reported by name resolution
        return ref

    # --- layers ----------------------------------------------------------------------------
    def make_layer(self, target: OpDef | DefRef, args: tuple[ast.Arg, ...], span: Span, scope: Scope) -> Layer:
        """Evaluate and bind arguments; ops validate theirs against the op table."""
        positional, keyword, tie = [], {}, None
        for a in args:
            value = self.eval(a.value, scope)
            if a.name is None:
                if keyword:
                    self.diags.add(messages.positional_after_keyword(a.span))
                    raise Fail
                positional.append((a, value))
            elif a.name == "tie" and isinstance(target, OpDef):
                tie = self.tie_target(a, value, target)
            elif a.name in keyword:
                self.diags.add(messages.duplicate_argument(a.span, target.name, a.name))
                raise Fail
            else:
                keyword[a.name] = (a, value)
        if isinstance(target, OpDef):
            bound = self.bind_op(target, positional, keyword, span)
        else:
            bound = self.bind_def(target, positional, keyword, span)
        return Layer(target, bound, tie, span)

    def tie_target(self, a: ast.Arg, value: Any, target: OpDef) -> Layer:
        if target.weight_free:
            self.diags.add(messages.no_weight_to_tie(a.span, target.name))
            raise Fail
        if not isinstance(value, Layer) or value.uid not in self.layer_paths:
            self.diags.add(messages.tie_needs_layer(a.value.span))
            raise Fail
        return value

    def bind_op(self, op: OpDef, positional, keyword, span: Span) -> tuple[tuple[str, Any], ...]:
        params = [p for p in op.params if op.category != "internal"]
        if len(positional) > len(params):
            self.diags.add(messages.too_many_arguments(positional[len(params)][0].span, op.name, len(positional), len(params)))
            raise Fail
        given = {p.name: pv for p, pv in zip(params, positional)}
        for name, pv in keyword.items():
            if op.param(name) is None:
                self.diags.add(messages.unknown_argument(pv[0].span, op.name, name, [p.name for p in params]))
                raise Fail
            if name in given:
                self.diags.add(messages.duplicate_argument(pv[0].span, op.name, name))
                raise Fail
            given[name] = pv
        attrs = []
        for p in params:
            if p.name in given:
                arg, value = given[p.name]
                try:
                    value = p.check(value)
                except ArgError as err:
                    self.diags.add(messages.bad_argument(arg.value.span, op.name, p.name, str(err)))
                    raise Fail from None
            elif p.default is REQUIRED:
                self.diags.add(messages.missing_argument(span, op.name, p.name))
                raise Fail
            else:
                value = p.check(p.default) if p.default is not None else None
            attrs.append((p.name, value))
        return tuple(sorted(attrs))

    def bind_def(self, ref: DefRef, positional, keyword, span: Span) -> tuple[tuple[str, Any], ...]:
        params = ref.node.params
        if len(positional) > len(params):
            self.diags.add(messages.too_many_arguments(positional[len(params)][0].span, ref.name, len(positional), len(params)))
            raise Fail
        env: dict[str, Any] = {}
        for p, (_, value) in zip(params, positional):
            env[p.name] = value
        names = [p.name for p in params]
        for name, (arg, value) in keyword.items():
            if name not in names:
                self.diags.add(messages.unknown_argument(arg.span, ref.name, name, names))
                raise Fail
            if name in env:
                self.diags.add(messages.duplicate_argument(arg.span, ref.name, name))
                raise Fail
            env[name] = value
        defaults = Scope("", "", ref.module, {}, ())
        for p in params:
            if p.name not in env:
                if p.default is None:
                    self.diags.add(messages.missing_argument(span, ref.name, p.name))
                    raise Fail
                defaults.env.update(env)
                env[p.name] = self.eval(p.default, defaults)
        return tuple((p.name, env[p.name]) for p in params)

    def apply(self, layer: Layer, inputs: list[Any], name: str, stage: ast.Stage, scope: Scope) -> list[Any]:
        """Apply a layer to tensors: one node for an op, an expanded body for a block."""
        if layer.uid in self.layer_paths:
            weights, _ = self.layer_paths[layer.uid]
            k = self.reuses[layer.uid] = self.reuses.get(layer.uid, 0) + 1
            path = f"{weights}@{k}"
        else:
            path, weights = scope.child(name, name)
            self.layer_paths[layer.uid] = (weights, stage.span)
        if isinstance(layer.target, OpDef):
            return self.apply_op(layer, inputs, path, weights, stage, scope)
        return self.apply_def(layer, inputs, path, weights, stage, scope)

    def apply_op(self, layer: Layer, inputs, path: str, weights: str, stage: ast.Stage, scope: Scope) -> list[Any]:
        op = layer.target
        lo, hi = op.inputs
        if not (lo <= len(inputs) and (hi == -1 or len(inputs) <= hi)):
            self.diags.add(messages.wrong_input_count(stage.callee_span, op.name, lo, hi, len(inputs)))
            raise Fail
        ties = ()
        if layer.tie is not None:
            ties = (("weight", join(self.layer_paths[layer.tie.uid][0], "weight")),)
        return self.add_node(op, layer.bound, inputs, path, weights, ties, stage.span, scope)

    def apply_def(self, layer: Layer, inputs, path: str, weights: str, stage: ast.Stage, scope: Scope) -> list[Any]:
        d = layer.target.node
        n_inputs = sum(1 for s in d.body if isinstance(s, ast.Input))
        if n_inputs != len(inputs):
            self.diags.add(messages.wrong_input_count(stage.callee_span, d.name, n_inputs, n_inputs, len(inputs)))
            raise Fail
        if id(d) in self.r.broken or any(v is POISON for _, v in layer.bound):
            raise Fail
        self.spend(stage.span, limits.NODE_STEPS)
        key = (id(d), _freeze(layer.bound))
        trace = [f.block for f in scope.trace] + [d.name]
        if key in self.stack:
            self.diags.add(messages.instantiation_cycle(stage.span, d.name, trace))
            raise Fail
        if len(self.stack) >= MAX_DEPTH:
            self.diags.add(messages.recursion_without_end(stage.span, d.name, len(self.stack), trace))
            raise Fail
        frame = Frame(d.name, layer.target.module, path, stage.span)
        inner = Scope(path, weights, layer.target.module, dict(layer.bound), scope.trace + (frame,), inputs=list(inputs))
        self.stack.append(key)
        try:
            self.stmts(d.body, inner)
        finally:
            self.stack.pop()
        if not inner.outputs:
            if not _declares_output(d.body):
                self.diags.add(messages.missing_output(d.name_span, d.name))
            raise Fail
        outs = [v for _, v in inner.outputs]
        if all(isinstance(v, Tensor) for v in [*inputs, *outs]):
            self.calls.append(BlockCall(frame, scope.path, layer.bound, tuple(t.vid for t in inputs), tuple(t.vid for t in outs)))
        return outs

    # --- graph building --------------------------------------------------------------------
    def new_value(self, name: str | None, t: TensorType | None, producer: int | None, span: Span) -> int:
        self.values.append(Value(len(self.values), name, t, producer, span))
        return len(self.values) - 1

    def name_value(self, t: Tensor, name: str) -> None:
        v = self.values[t.vid]
        if v.name is None:
            self.values[t.vid] = replace(v, name=name)

    def add_node(self, op: OpDef, attrs, inputs, path, weights, ties, span: Span, scope: Scope) -> list[Any]:
        if any(not isinstance(x, Tensor) for x in inputs):
            if any(x is not POISON for x in inputs if not isinstance(x, Tensor)):
                self.diags.add(messages.chain_carries_values(span))
            raise Fail
        try:
            self.budget.node()
        except OverBudget as err:
            self.over_budget(span, err)
        nid = len(self.nodes)
        n_out = op.outputs(dict(attrs), len(inputs))
        self.spend(span, limits.NODE_STEPS + n_out)  # `chunk(100000000)`: each output is a value
        outs = [self.new_value(None, None, nid, span) for _ in range(n_out)]
        self.nodes.append(Node(nid, op.name, tuple(attrs), tuple(x.vid for x in inputs), tuple(outs), path,
                               weights, ties, span, scope.trace))
        return [Tensor(v) for v in outs]


def _freeze(bound: tuple[tuple[str, Any], ...]) -> tuple:
    return tuple((k, v.uid if isinstance(v, Layer) else v) for k, v in bound)


class _Statements(StmtVisitor[None]):
    """Runs the statements of one scope (a network, or one block instance) on the expander."""

    def __init__(self, expander: _Expander, scope: Scope) -> None:
        self.x = expander
        self.scope = scope

    def visit_input(self, s: ast.Input) -> None:
        x, scope = self.x, self.scope
        scope.env[s.name] = x.block_input(s, scope) if scope.inputs is not None else x.graph_input(s, scope)

    def visit_param_tensor(self, s: ast.ParamTensor) -> None:
        self.scope.env[s.name] = self.x.param_tensor(s, self.scope)

    def visit_output(self, s: ast.Output) -> None:
        self.x.output(s, self.scope)

    def visit_let(self, s: ast.Let) -> None:
        self.scope.env[s.name] = self.x.eval(s.value, self.scope)

    def visit_bind(self, s: ast.Bind) -> None:
        self.x.bind(s, self.scope)

    def visit_for(self, s: ast.For) -> None:
        self.x.for_loop(s, self.scope)

    def visit_if(self, s: ast.If) -> None:
        cond = self.x.eval(s.cond, self.scope)
        self.x.stmts(s.then if cond else s.orelse, self.scope)

    def visit_assert(self, s: ast.Assert) -> None:
        self.x.check_assert(s, self.scope)


class _BoundNames(StmtVisitor[tuple[str, ...]]):
    """The names one statement binds in its own scope (not inside loop or branch bodies)."""

    def visit_input(self, s: ast.Input) -> tuple[str, ...]:
        return (s.name,)

    def visit_param_tensor(self, s: ast.ParamTensor) -> tuple[str, ...]:
        return (s.name,)

    def visit_output(self, s: ast.Output) -> tuple[str, ...]:
        return (s.name,)

    def visit_let(self, s: ast.Let) -> tuple[str, ...]:
        return (s.name,)

    def visit_bind(self, s: ast.Bind) -> tuple[str, ...]:
        return s.names

    def visit_for(self, s: ast.For) -> tuple[str, ...]:
        return ()

    def visit_if(self, s: ast.If) -> tuple[str, ...]:
        return ()

    def visit_assert(self, s: ast.Assert) -> tuple[str, ...]:
        return ()


_BOUND_NAMES = _BoundNames()


class _OutputFinder(StmtWalker):
    """Whether a body declares an `output` anywhere (in a loop or branch too)."""

    def __init__(self) -> None:
        self.found = False

    def visit_output(self, s: ast.Output) -> None:
        self.found = True


def _declares_output(body: tuple[ast.Stmt, ...]) -> bool:
    finder = _OutputFinder()
    finder.visit_body(body)
    return finder.found
