"""One PyTorch class from one block or network definition, generalized over its instances.

See `file.py` for what the emitted code guarantees. The writer walks the def's AST once, as a
statement visitor, writing `__init__` and `forward` side by side into statement trees (code.py)
that are cleaned up on their Python `ast` afterwards. Every tensor's sizes are tracked as `Dim`s
in the class's own terms (`self.shapes`; tracking.py and sizes.py): parameters (`cout`),
keyword-only size arguments (`in_channels`), running size variables inside loops, sizes every
use agrees on -- and each stage's output sizes come from the op table's own shape rule.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ...ops import OPS, OpDef
from ...ops.gradient import differentiated_names
from ...ops.table import REQUIRED
from ...passes.decorators import init_scheme
from ...passes.resolve import DefRef
from ...syntax import ast
from ...syntax.visitor import StmtVisitor
from .instances import DefKey, Instance
from .code import (Lines, Stmt, as_module_list, drop_dead_stores, expression_attributes, expression_names,
                   names_read, prune_empty_branches, render, self_attributes_read, unread_loop_variables)
from .forms import MissingSize, OpSource
from .numbering import Count, Lost, loop_counts, merged_count, pass_index, per_pass, term
from .pysource import py_expr, py_value
from .sizes import (Size, Sizes, built, comment_size, py_size, source_shapes, spec_size)
from .tracking import SizeTracking
from .text import (INIT_FUNCTIONS, PyClass, attr_ref, callee_name, comment_block_above, dim_word, docstring,
                   callee_qualname, emit_error, exposed_attr, is_sequential, label_source, makes_layer, parameter_source, rebound,
                   tracked_dim)

if TYPE_CHECKING:
    from .file import FileWriter


class ClassWriter(SizeTracking, StmtVisitor[None]):
    """Writes one class from a def's AST, generalizing over the def's instances."""

    def __init__(self, fw: FileWriter, key: DefKey, ref: DefRef) -> None:
        self.fw = fw
        self.key = key
        self.ref = ref
        self.d = ref.node
        self.insts = fw.index.instances[key]
        self.init = Lines()
        self.fwd = Lines()
        self.shapes: dict[str, Sizes] = {}
        self.initial_shapes: dict[str, Sizes] = {}  # the inputs' sizes as the class starts
        self._running: list[dict[tuple[str, int], str]] = []  # per open loop or branch: running size variables
        self._lost: list[set[tuple[str, int]]] = []
        self._changed: list[set[tuple[str, int]]] = []
        self._before: list[dict[tuple[str, int], Size]] = []  # per open loop or branch: sizes before it
        self.params = {p.name for p in self.d.params}
        self.fwd_params: set[str] = set()
        self.layers: dict[str, str] = {}  # spec name of a layer value -> attribute
        self.layer_stages: dict[str, tuple[Any, ast.Stage]] = {}  # label -> (its op or block, the stage that built it)
        self.pending_layers: dict[str, ast.Expr] = {}  # let-bound layers not built yet
        self.size_args: list[tuple[str, int, int]] = []  # constructor size arguments actually used
        self.size_arg_inputs: dict[str, tuple[int, int]] = {}  # candidate name -> (input, dim)
        self.helpers: set[str] = set()
        self.sequential = is_sequential(self.d)
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.loop_depth = 0
        self.exposure_tokens: dict[str, tuple] = {}
        self.loops: list[tuple[tuple[str, ...], ast.Expr]] = []
        self.fwd_lets: set[str] = set()
        self.placeholders: set[str] = set()
        self.assigned: list[tuple[str, int]] = []  # submodule attributes set, with their __init__ level
        self.numbered_from_zero: str | None = None  # loop variable numbering layers 0, 1, ... at top level
        self.counter: Count | Lost = Count()  # the number the next unlabeled stage gets (numbering.py)
        self.fwd_attrs: dict[str, str] = {}  # a numbered attribute (`=str(i + 1)`) as forward() writes it
        self.tensor_refs: dict[str, str] = {}  # a parameter tensor forward() reads as `self.cls_token`
        self.rebound_names = rebound(self.d.body)  # ... unless the spec binds its name again: a local then
        self.differentiated = differentiated_names(self.d.body)  # the `x` of `(y, x) -> grad`: autograd follows it

    # --- names ---------------------------------------------------------------------------
    def init_name(self, name: str) -> str:
        if "." in name:
            alias, def_name = name.split(".", 1)
            ref = self.fw.resolved.lookup_def(self.ref.module, (alias, def_name))
            return self.fw.class_name(ref) if ref else name
        return name

    def fwd_name(self, name: str) -> str:
        return f"self.{name}" if name in self.params else self.init_name(name)

    # --- class ---------------------------------------------------------------------------
    def write(self) -> PyClass:
        self.init.add("super().__init__()")
        for p in self.d.params:
            if p.default is not None and isinstance(p.default, ast.Call):
                raise emit_error(p.span, "a layer as a parameter default")
        for p in self.d.params:
            if p.default is not None and self._dependent_default(p):
                self.init.add(f"{p.name} = {py_expr(p.default, self.init_name)} if {p.name} is None else {p.name}")
        self.visit_body(self.d.body)
        self._tie_and_init()
        exposures = [Stmt(f"self.{exposed_attr(k, dim, rank)} = {self._out_dim(k, dim)}")
                     for k, dim, rank in sorted(self.fw.exposed.get(self.key, ()))]
        params = [self._param(p) for p in self.d.params]
        size_params = ["*", *(f"{name}: int" for name, _, _ in self.size_args)] if self.size_args else []
        self.fw.size_params[self.key] = list(self.size_args)
        self.fw.input_symbols[self.key] = self._input_symbols()
        self.fw.out_exprs[self.key] = [self.shapes.get(o) for o in self.outputs]
        forward = drop_dead_stores(self.fwd.tree(), self.fwd_lets)
        init = self.init.tree()
        base = "nn.Sequential" if self.sequential else "nn.Module"
        var = self.numbered_from_zero
        if var is not None and self.assigned == [(f"=str({var})", 1)]:
            as_module_list(init, forward, var)
            base = "nn.ModuleList"
        submodules = {attr for attr, _ in self.assigned} | set(self.tensor_refs)  # a label (or `param`) of that name
        used = (self_attributes_read(forward) & (self.params - submodules)) | self.fwd_params
        init[1:1] = [Stmt(f"self.{n} = {n}") for n in sorted(used)]
        init.extend(exposures)
        init = prune_empty_branches(drop_dead_stores(init, self.placeholders))
        unread_loop_variables(init)
        unread_loop_variables(forward)
        returns = ", ".join(self.outputs)
        return PyClass(self.fw.names[self.key], base, self._doc(),
                       ["self", *params, *size_params], render(init), ["self", *self.inputs], render(forward),
                       returns, self.helpers)

    def _param(self, p: ast.Param) -> str:
        if p.default is None:
            return p.name
        if self._dependent_default(p):
            return f"{p.name}=None"
        return f"{p.name}={py_expr(p.default, self.init_name)}"

    def _dependent_default(self, p: ast.Param) -> bool:
        """A default computed from earlier parameters (`d_ff=4*d`) is filled in the body."""
        names = expression_names(py_expr(p.default, self.init_name))
        return any(q.name in names for q in self.d.params if q is not p)

    def _doc(self) -> str:
        """The spec's comment above the def, then where the def is."""
        where = f"{self.ref.module}:{self.d.span.line}"
        params = ", ".join(p.name for p in self.d.params)
        origin = f"`{self.d.kind} {self.d.name}({params})` from {where}."
        for train in self.fw.resolved.scopes[self.ref.module].trains.values():
            for step, ref in train.steps:
                if ref.node is self.d:  # a step network: the objective of a training definition
                    what = f"step `{step.name}` of " if step is not None else ""
                    origin = f"The objective of {what}`train {train.name}` from {where}."
        source = self.fw.result.sources.get(self.d.span.file)
        comment = comment_block_above(source.text, self.d.span.line) if source is not None else []
        return docstring([*comment, "", origin] if comment else [origin], "    ")

    # --- statements ----------------------------------------------------------------------
    def visit_output(self, s: ast.Output) -> None:
        if s.chain is not None:
            self.chain(s.chain, (s.name,))
        if s.name not in self.outputs:  # `output y` in both branches of an `if` is one output
            self.outputs.append(s.name)

    def visit_bind(self, s: ast.Bind) -> None:
        self.chain(s.chain, s.names)

    def visit_assert(self, s: ast.Assert) -> None:
        msg = f", {py_value(s.message)}" if s.message else ""
        self.init.add(f"assert {py_expr(s.cond, self.init_name)}{msg}")

    def visit_input(self, s: ast.Input) -> None:
        index = len(self.inputs)
        self.inputs.append(s.name)
        self.shapes[s.name] = self._input_sizes(s, index)
        self.initial_shapes[s.name] = list(self.shapes[s.name])
        self._track_grad((s.name,))

    def visit_param_tensor(self, s: ast.ParamTensor) -> None:
        """`self.cls_token = nn.Parameter(torch.zeros(1, 1, d))`; forward reads `self.cls_token`
        (or a local of that name, when the spec binds the name again)."""
        self.init.add(f"self.{s.name} = nn.Parameter({parameter_source(s, self.init_name)})")
        self.shapes[s.name] = [None if isinstance(d, ast.DimExample) else spec_size(d, self.init_name)
                               for d in s.type.dims]
        self.tensor_refs[s.name] = f"self.{s.name}"
        if s.name in rebound(self.d.body):
            self.fwd.add(f"{s.name} = self.{s.name}")

    def visit_let(self, s: ast.Let) -> None:
        callee = callee_qualname(s.value)
        if callee is not None and ((len(callee) == 1 and callee[0] in OPS)
                                   or self.fw.resolved.lookup_def(self.ref.module, callee)):
            self.pending_layers[s.name] = s.value  # a layer value: built where it is first applied
            return
        if isinstance(s.value, ast.IfExpr) and makes_layer(s.value, self._is_layer_callee):
            raise emit_error(s.value.span, "a layer value chosen by a conditional expression")
        if isinstance(self.counter, Count) and s.name in self.counter.names():
            self.counter = Lost(f"follows from `{s.name}`, which line {s.span.line} binds again", s.span)
        self.init.add(f"{s.name} = {py_expr(s.value, self.init_name)}")
        if not self.sequential:
            self.fwd.add(f"{s.name} = {py_expr(s.value, self.fwd_name)}")
            self.fwd_lets.add(s.name)

    def _is_layer_callee(self, name: str) -> bool:
        return name in OPS or self.fw.resolved.lookup_def(self.ref.module, (name,)) is not None

    def visit_for(self, s: ast.For) -> None:
        targets = ", ".join(s.names)
        carried = rebound(s.body) & set(self.shapes)
        inside, after_count = self._loop_counts(s)
        self.counter = inside
        keep, after = self._loop_analysis(s, carried)
        self._materialize(carried, keep=keep)
        self.init.add(f"for {targets} in {py_expr(s.iterable, self.init_name)}:")
        if not self.sequential:
            self.fwd.add(f"for {targets} in {py_expr(s.iterable, self.fwd_name)}:")
        self.loops.append((s.names, s.iterable))
        body_at = len(self.init.entries)
        self._indented(lambda: (self.visit_body(s.body), self._reassign(carried)))
        self.loops.pop()
        self._check_pass(s, inside)
        self.counter = after_count
        read = names_read([Stmt(text) for _, text in self.init.entries[body_at:]])
        for var, d in sorted(self._lost[-1]):
            if f"{var}_{dim_word(d, len(self.shapes[var]))}" in read:
                # the next iteration would read the size this one could not update
                raise emit_error(s.span, f"a loop in which the size of dim {d} of `{var}` changes in a way "
                                         "that follows from no parameter")
        self._restore(carried)
        for (var, d), size in after.items():
            if self.shapes[var][d] is None:
                self.shapes[var][d] = size

    def visit_if(self, s: ast.If) -> None:
        carried = (rebound(s.then) | rebound(s.orelse)) & set(self.shapes)
        self._materialize(carried, branch=True)
        init_at, fwd_at, level = len(self.init.entries), len(self.fwd.entries), self.init.level
        self.init.add(f"if {py_expr(s.cond, self.init_name)}:")
        if not self.sequential:
            self.fwd.add(f"if {py_expr(s.cond, self.fwd_name)}:")
        materialized = {v: list(self.shapes[v]) for v in carried}
        first = len(self.assigned)
        entering = self.counter
        self._indented(lambda: (self.visit_body(s.then), self._reassign(carried)))
        then_attrs, else_attrs = self.assigned[first:], []
        then_count, self.counter = self.counter, entering
        fresh = (rebound(s.then) | rebound(s.orelse)) - carried  # tensors the branch binds first
        then_shapes = {v: self.shapes.get(v) for v in fresh if v in self.shapes}
        then_ends = {v: list(self.shapes[v]) for v in carried}
        self.shapes.update({v: list(sh) for v, sh in materialized.items()})
        if s.orelse:
            self.init.add("else:")
            if not self.sequential:
                self.fwd.add("else:")
            first = len(self.assigned)
            self._indented(lambda: (self.visit_body(s.orelse), self._reassign(carried)))
            else_attrs = self.assigned[first:]
        self.counter = self._merged_count(s, entering, then_count, self.counter)
        for v, shape in then_shapes.items():  # bound on both paths: only the sizes both agree on
            self.shapes[v] = _agreed(shape, self.shapes.get(v)) if v in rebound(s.orelse) else shape
        else_ends = {v: list(self.shapes[v]) for v in carried}
        self._restore(carried)
        for v in carried:  # sizes not kept in running variables: what both paths agree on
            for d, size in enumerate(_agreed(then_ends[v], else_ends[v]) or ()):
                if self.shapes[v][d] is None and not tracked_dim(d, len(self.shapes[v])):
                    self.shapes[v][d] = size
        if not self.sequential and not self.loop_depth:
            self._branch_on_submodule(then_attrs, else_attrs, level, init_at, fwd_at)

    def _branch_on_submodule(self, then_attrs: list[tuple[str, int]], else_attrs: list[tuple[str, int]],
                             level: int, init_at: int, fwd_at: int) -> None:
        """`if self.downsample is not None:` in forward, as torchvision writes it, when one side of
        the branch builds submodules (directly in its body) and the other builds none: the
        submodule is None exactly when that side was not taken, and forward need not keep the
        condition's inputs."""
        if bool(then_attrs) == bool(else_attrs):
            return
        built = then_attrs or else_attrs
        direct = [a for a, lv in built if lv == level + 1]
        if len(direct) != len(built) or not all(a.isidentifier() for a in direct):
            return
        test = "is not None" if then_attrs else "is None"
        self.fwd.entries[fwd_at] = (self.fwd.entries[fwd_at][0], f"if self.{direct[0]} {test}:")
        self.init.entries[init_at:init_at] = [(level, f"self.{a} = None") for a in direct]

    def _indented(self, fn) -> None:
        self.init.level += 1
        self.fwd.level += 1
        self.loop_depth += 1
        try:
            fn()
        finally:
            self.init.level -= 1
            self.fwd.level -= 1
            self.loop_depth -= 1

    # --- chains --------------------------------------------------------------------------
    def chain(self, c: ast.Chain, targets: tuple[str, ...]) -> None:
        shapes = [self.shapes.get(src.id) for src in c.sources]
        current = [src.id if src.id in self.rebound_names else self.tensor_refs.get(src.id, src.id)
                   for src in c.sources]
        if not c.stages:
            self.fwd.add(f"{', '.join(targets)} = {', '.join(current)}")
            for t, s in zip(targets, shapes):
                self.shapes[t] = list(s) if s else s
            self._track_grad(targets)
            return
        for i, stage in enumerate(c.stages):
            last = i == len(c.stages) - 1
            outs = list(targets) if last else [targets[0]]
            shapes = self.stage(stage, current, shapes, outs)
            current = outs
        for t, s in zip(targets, shapes):
            self.shapes[t] = s
        self._track_grad(targets)

    def _track_grad(self, names) -> None:
        """`x = track_grad(x)` right where a name that a `grad` differentiates by is defined."""
        tracked = [n for n in names if n in self.differentiated]
        if tracked and not self.sequential:
            self.helpers.add("track_grad")
            for n in tracked:
                self.fwd.add(f"{n} = track_grad({n})")

    def stage(self, stage: ast.Stage, inputs: list[str], shapes: list, outs: list[str]) -> list:
        name = stage.callee[0] if len(stage.callee) == 1 else None
        # an existing layer is applied by its bare name; `attention(scaled=false)` is the op, even
        # where a branch labelled a layer `attention`
        if stage.args is None and (name in self.layers or name in self.pending_layers
                                   or name in self.params and name not in OPS):
            return self.layer_stage(stage, name, inputs, shapes, outs)
        if name in OPS:
            out = self.op_stage(stage, OPS[name], inputs, shapes, outs)
        else:
            out = self.block_stage(stage, self.fw.resolved.lookup_def(self.ref.module, stage.callee), inputs, shapes, outs)
        self._count(stage)
        return out

    # --- op stages -----------------------------------------------------------------------
    def op_stage(self, stage: ast.Stage, op: OpDef, inputs, shapes, outs) -> list:
        """An op's module and call; an attr its PyTorch form needs as a literal and that is not one
        (`l1(reduce=v)` in a branch no instance takes, so no rule checked it) is refused (E0601)."""
        try:
            return self._op_stage(stage, op, inputs, shapes, outs)
        except ValueError as err:  # forms.py raises ValueError only for such an attr
            raise emit_error(stage.span, f"`{op.name}` here: {err}") from None

    def _op_stage(self, stage: ast.Stage, op: OpDef, inputs, shapes, outs) -> list:
        execs = self.fw.index.op_execs(self.insts, stage.span)
        entry = op.torch
        firsts, lasts = _copy_ends(execs) if stage.repeat is not None else (execs, execs)
        in_shapes = self._fill(shapes, [(i, n.inputs) for i, n in firsts], stage)
        src_init = OpSource(*self._attrs(op, stage, self.init_name), source_shapes(in_shapes))
        src_fwd = None if self.sequential else OpSource(*self._attrs(op, stage, self.fwd_name), src_init.in_shapes)
        weighted = not op.weight_free
        outputs = [(i, n.outputs) for i, n in lasts]
        after_one = self._infer(op, stage, execs, in_shapes, len(outs))  # the first copy's outputs
        out_shapes = self._fill(self._after_copies(op, stage, execs, in_shapes, after_one), outputs, stage)
        self.helpers.update(entry.helpers)
        if self.sequential:
            module = self._copies(entry, src_init, after_one, stage)
            self._seq_module(stage, module, outputs, out_shapes)
            return out_shapes
        repeat = self._repeat(stage)
        comment = self._comment(outputs, out_shapes)
        if weighted or (stage.label and entry.module is not None):
            attr = self._attr_name(stage, [(i, n.path) for i, n in execs])
            module = self._copies(entry, src_init, after_one, stage)
            if stage.label and not stage.label_parts:
                self.layers[stage.label] = attr_ref(attr)
                self.layer_stages[stage.label] = (op, stage)
            if repeat and len(inputs) > 1:
                self._assign(attr, f"nn.ModuleList({module} for _ in range({repeat}))")
                self._repeated_calls(stage, inputs, outs, lambda layer, xs: entry.call(src_fwd, layer, xs),
                                     self._fwd_ref(stage, attr), comment)
                return out_shapes
            if repeat:
                self._assign(attr, f"nn.Sequential(*({module} for _ in range({repeat})))")
            else:
                self._assign(attr, module)
                self._tie(op, stage, attr)
            call = entry.call(src_fwd, self._fwd_ref(stage, attr), inputs)
        elif repeat:
            self._repeated_calls(stage, inputs, outs, lambda _, xs: entry.call(src_fwd, None, xs),
                                 f"range({py_expr(stage.repeat, self.fwd_name)})", comment)
            return out_shapes
        else:
            call = entry.call(src_fwd, None, inputs)
        self.fwd.add(f"{', '.join(outs)} = {call}{comment}")
        return out_shapes

    def _repeated_calls(self, stage: ast.Stage, inputs: list[str], outs: list[str], call, over: str,
                        comment: str) -> None:
        """`* n` in forward as a loop: `y = x`, then `for layer in self.layers: y = layer(y, memory)`
        (`for _ in range(n)` for a weight-free op). Each pass's outputs take the place of the first
        inputs and the other inputs stay, as in the IR (passes/expand.py)."""
        if len(outs) > len(inputs):
            raise emit_error(stage.span, "a repeated stage with more outputs than inputs")
        first, rest = inputs[:len(outs)], inputs[len(outs):]
        if first != outs:
            self.fwd.add(f"{', '.join(outs)} = {', '.join(first)}")
        var = "_" if over.startswith("range(") else self._free_name("layer")
        self.fwd.add(f"for {var} in {over}:")
        self.fwd.level += 1
        self.fwd.add(f"{', '.join(outs)} = {call(var, [*outs, *rest])}{comment}")
        self.fwd.level -= 1

    def _free_name(self, name: str) -> str:
        """`name`, or `name_`, ... where a tensor of the spec already has it."""
        taken = set(self.shapes) | set(self.inputs) | self.fwd_lets
        while name in taken:
            name += "_"
        return name

    def _after_copies(self, op: OpDef, stage: ast.Stage, execs, in_shapes: list, after_one: list) -> list:
        """The outputs of `op * n` from those of its first copy: a size a second copy keeps is the
        last copy's too; one it changes (`conv2d(c, 3, stride=2) * 3`) is left to the IR."""
        if stage.repeat is None or any(s is None for s in after_one):
            return after_one
        again = self._infer(op, stage, execs, list(after_one) + list(in_shapes[len(after_one):]), len(after_one))
        out = [None if b is None else [x if x == y else None for x, y in zip(a, b, strict=True)]
               for a, b in zip(after_one, again, strict=True)]
        if len({id(inst) for inst, _ in execs}) < len(self.insts):  # an instance makes no copy (`* 0`):
            out = [None if o is None or i is None or len(o) != len(i) else  # there the outputs are the inputs
                   [x if x == y else None for x, y in zip(o, i, strict=True)] for o, i in zip(out, in_shapes[:len(out)], strict=True)]
        return out

    def _copies(self, entry, src: OpSource, out_shapes: list, stage: ast.Stage) -> str:
        """The module of an op stage; of `op * n`, the module of copy `_` (the loop's variable
        where it is built): every copy after the first reads the previous copy's outputs, so
        `linear(4096) * 3` on 9216 features is `nn.Linear(9216, 4096)`, then `nn.Linear(4096, 4096)`
        twice (`nn.Linear(9216, 4096) if _ == 0 else nn.Linear(4096, 4096)`)."""
        first = self._module(entry, src, stage)
        if stage.repeat is None:
            return first
        n = len(out_shapes)
        if any(s is None for s in out_shapes):
            return first
        later = OpSource(src.attrs, src.given, source_shapes(out_shapes) + src.in_shapes[n:])
        rest = self._module(entry, later, stage)
        return first if rest == first else f"{first} if _ == 0 else {rest}"

    def _module(self, entry, src: OpSource, stage: ast.Stage) -> str:
        if entry.module is None:
            raise emit_error(stage.span, f"`{stage.callee[0]}` in a sequential block")
        try:
            text = entry.module(src)
        except MissingSize as err:
            raise emit_error(stage.span, f"the size of dim {err.dim} of input {err.input_index} of "
                                          f"`{stage.callee[0]}` varies between uses and follows from no parameter")
        self._use_size_args(text)
        self._note_exposed(text)
        return text

    def _seq_module(self, stage: ast.Stage, module: str, outputs, shapes) -> None:
        repeat = self._repeat(stage)
        comment = self._comment(outputs, shapes)
        label = label_source(stage, self.init_name) if stage.label_parts else py_value(stage.label)
        line = f"self.add_module({label}, {module})" if stage.label else f"self.append({module})"
        if repeat:
            self.init.add(f"for _ in range({repeat}):")
            self.init.level += 1
            self.init.add(line + comment)
            self.init.level -= 1
        else:
            self.init.add(line + comment)

    def _attrs(self, op: OpDef, stage: ast.Stage, names) -> tuple[dict[str, str], frozenset[str]]:
        params = [p for p in op.params]
        given = {name: py_expr(e, names) for name, e in self._given(op, stage).items()}
        values = {}
        for p in params:
            if p.name in given:
                values[p.name] = given[p.name]
            elif p.default is not REQUIRED:
                values[p.name] = py_value(p.default)
        return values, frozenset(given)

    def _tie(self, op: OpDef, stage: ast.Stage, attr: str) -> None:
        for a in stage.args or ():
            if a.name == "tie" and isinstance(a.value, ast.Name):
                owner = self.layers.get(a.value.id, attr_ref(a.value.id))
                self.init.add(f"{attr_ref(attr)}.weight = {owner}.weight  # tied")

    def _attr_name(self, stage: ast.Stage, paths: list[tuple[Instance, str]]) -> str:
        """The submodule name: the label, or the stage's number as the IR counts it (numbering.py):
        `"3"`, or `=str(i + 1)` where it follows from loops and branches."""
        if stage.label_parts:
            return "=" + label_source(stage, self.init_name)
        if stage.label:
            return stage.label
        if stage.repeat is not None:
            raise emit_error(stage.span, "an unlabeled repeated stage with weights: the IR numbers each copy as a "
                                         "layer of its own, which one submodule cannot hold; label it "
                                         "(`layers: X * n` is an nn.Sequential named `layers`)")
        count = self.counter
        if isinstance(count, Lost):
            raise emit_error(stage.span, f"the number of this unlabeled layer (its state_dict prefix): it {count.why}; "
                                         "label it (a numbered label such as `block{k}:` is evaluated where the stage "
                                         "runs) or move the loop into a block of its own")
        if count.is_const:
            numbers = {path.rsplit(".", 1)[-1].split("@")[0] for _, path in paths}
            if numbers - {str(count.const)}:
                raise emit_error(stage.span, f"a layer numbered {count.const} here that the IR numbers "
                                             f"{', '.join(sorted(numbers))} (an emitter bug)")
            return str(count.const)
        attr = f"=str({count.source()})"
        self.fwd_attrs[attr] = f"=str({count.source(forward=True)})"
        if self.loops and self.init.level == 1:  # numbered 0, 1, ... by a top-level loop: maybe a ModuleList
            loop = ast.For(*self.loops[-1], (), stage.span)
            if count == pass_index(loop, self.init_name, self.fwd_name):
                self.numbered_from_zero = loop.names[0]
        return attr

    def _count(self, stage: ast.Stage) -> None:
        """After an unlabeled stage: the next number (`* n` copies take n)."""
        if stage.label or not isinstance(self.counter, Count):
            return
        if stage.repeat is None:
            self.counter += 1
        elif isinstance(stage.repeat, ast.Literal) and type(stage.repeat.value) is int:
            self.counter += stage.repeat.value
        else:
            self.counter += Count.of(term(stage.repeat, self.init_name, self.fwd_name, wrap=True))

    def _layer_names(self) -> set[str]:
        """The names a stage applies as an existing layer (no number): labels, let-bound layers,
        layer parameters."""
        return set(self.layers) | set(self.pending_layers) | {p for p in self.params if p not in OPS}

    def _loop_counts(self, s: ast.For) -> tuple[Count | Lost, Count | Lost]:
        return loop_counts(s, self.counter, self._layer_names(), self.init_name, self.fwd_name)

    def _check_pass(self, s: ast.For, inside: Count | Lost) -> None:
        """The body took the numbers `per_pass` said it would (else the names in it are wrong)."""
        step = per_pass(s.body, self._layer_names())
        if isinstance(inside, Lost) or isinstance(self.counter, Lost) or step is None:
            return
        if self.counter != inside + step:
            raise emit_error(s.span, "a loop body whose stage numbers the emitter counted two ways (an emitter bug)")

    def _merged_count(self, s: ast.If, entering, then_count, else_count) -> Count | Lost:
        return merged_count(s, entering, then_count, else_count, self.init_name, self.fwd_name)

    def _fwd_ref(self, stage: ast.Stage, attr: str) -> str:
        """The submodule as forward() reads it: a numbered label's pieces, or its number, in forward's names."""
        if stage.label_parts:
            return attr_ref("=" + label_source(stage, self.fwd_name))
        return attr_ref(self.fwd_attrs.get(attr, attr))

    def _assign(self, attr: str, value: str) -> None:
        self.assigned.append((attr, self.init.level))
        if attr.startswith("="):
            self.init.add(f"self.add_module({attr[1:]}, {value})")
        elif attr.isidentifier():
            self.init.add(f"self.{attr} = {value}")
        else:
            self.init.add(f"self.add_module({py_value(attr)}, {value})")

    # --- block stages --------------------------------------------------------------------
    def block_stage(self, stage: ast.Stage, ref: DefRef, inputs, shapes, outs) -> list:
        execs = self.fw.index.call_execs(self.insts, stage.span)
        if not execs:
            raise emit_error(stage.span, f"`{ref.name}` in a branch that no network takes")
        key = (ref.module, ref.name)
        in_shapes = self._fill(shapes, [(i, c.inputs) for i, c in execs], stage)
        self._note_input_sizes(ref, stage, in_shapes)
        args = [py_expr(a.value, self.init_name) if a.name is None else f"{a.name}={py_expr(a.value, self.init_name)}"
                for a in stage.args or ()]
        sizes = self._size_values(stage, ref, in_shapes)
        outputs = [(i, c.outputs) for i, c in execs]
        repeat = self._repeat(stage)
        if repeat and sizes and self._grows(stage, ref, in_shapes, sizes, len(outs)):
            return self._repeat_growing(stage, ref, inputs, in_shapes, args, sizes, outs, outputs)
        construct = f"{self.fw.class_name(ref)}({', '.join(args + [f'{n}={v}' for n, v, _, _ in sizes])})"
        out_shapes = self._fill(self._child_outputs(ref, stage, in_shapes, len(outs)), outputs, stage)
        if self.sequential:
            self._seq_module(stage, construct, outputs, out_shapes)
            return out_shapes
        attr = self._attr_name(stage, [(i, c.frame.path) for i, c in execs])
        looped = bool(repeat) and len(inputs) > 1  # several inputs: a ModuleList, looped over in forward
        if looped:
            self._assign(attr, f"nn.ModuleList({construct} for _ in range({repeat}))")
        elif repeat:
            self._assign(attr, f"nn.Sequential(*({construct} for _ in range({repeat})))")
        else:
            self._assign(attr, construct)
        ref_src = attr_ref(attr)
        if not looped:  # a child's sizes, read from the one instance built here (the last of a repeat)
            reader = f"{ref_src}[-1]" if repeat else ref_src
            out_shapes = [[self._child_dim(key, reader, k, d, len(s), dim) for d, dim in enumerate(s)]
                          for k, s in enumerate(out_shapes)]
            self._read_now(outs, out_shapes)
        if stage.label and not stage.label_parts:
            self.layers[stage.label] = ref_src
            self.layer_stages[stage.label] = (ref, stage)
        self._block_call(stage, inputs, outs, self._fwd_ref(stage, attr), looped,
                         self._comment(outputs, out_shapes))
        return out_shapes

    def _read_now(self, outs: list[str], out_shapes: list) -> None:
        """Inside a loop, a size read from a child (`getattr(self, f"block{k}").out_channels`) goes
        into the running variable at once: later statements of the body may change what the
        child's name means (`let k = k + 1`)."""
        for var, shape in zip(outs, out_shapes, strict=False):
            running = self._running[-1] if self._running else {}
            for d, size in enumerate(shape or ()):
                name = running.get((var, d))
                if name is not None and size is not None and any(s.startswith(("=self.", "=getattr("))
                                                                  for s in size.symbols()):
                    self.init.add(f"{name} = {self._written(size)}")
                    shape[d] = built(name)
                    self._changed[-1].add((var, d))

    def _block_call(self, stage: ast.Stage, inputs: list[str], outs: list[str], ref: str, looped: bool,
                    comment: str) -> None:
        if looped:
            self._repeated_calls(stage, inputs, outs, lambda layer, xs: f"{layer}({', '.join(xs)})", ref, comment)
        else:
            self.fwd.add(f"{', '.join(outs)} = {ref}({', '.join(inputs)}){comment}")

    def _size_values(self, stage: ast.Stage, ref: DefRef, in_shapes) -> list[tuple[str, str, int, int]]:
        """The child's size arguments as (name, value here, input index, dim)."""
        out = []
        for name, i, d in self.fw.size_params.get((ref.module, ref.name), []):
            value = py_size(in_shapes[i][d]) if i < len(in_shapes) and d < len(in_shapes[i]) else None
            if value is None:
                raise emit_error(stage.span, f"the input sizes of `{ref.name}` vary between uses and follow "
                                              "from no parameter")
            self._use_size_args(value)
            self._note_exposed(value)
            out.append((name, value, i, d))
        return out

    def _grows(self, stage, ref: DefRef, in_shapes, sizes, n_out: int) -> bool:
        """Whether the copies of `X(...) * n` see different input sizes: the child's output size
        is not simply the size argument it was given (DenseNet's layers grow, PixelCNN's keep it)."""
        probe = [list(s) for s in in_shapes]
        for _, _, i, d in sizes:
            probe[i][d] = built(f"__probe_{i}_{d}")
        out = self._child_outputs(ref, stage, probe, n_out)
        first = out[0] if out else None
        return any(first is None or d >= len(first) or first[d] != built(f"__probe_{i}_{d}") for _, _, i, d in sizes)

    def _repeat_growing(self, stage, ref: DefRef, inputs, in_shapes, args, sizes, outs, outputs) -> list:
        """`X(...) * n` whose input size changes copy to copy (DenseNet): a loop with a running size."""
        key = (ref.module, ref.name)
        if self.sequential:
            container = "self"
        else:
            attr = self._attr_name(stage, [])
            self._assign(attr, "nn.Sequential()" if len(inputs) == 1 else "nn.ModuleList()")
            container = attr_ref(attr)
        fwd_container = container if self.sequential else self._fwd_ref(stage, attr)
        running = []
        for name, value, i, d in sizes:
            var = f"{inputs[i].removeprefix('self.')}_{dim_word(d, len(in_shapes[i]))}"
            self.placeholders.add(var)
            self.init.add(f"{var} = {value}")
            running.append((name, var, i, d))
        call_args = args + [f"{name}={var}" for name, var, _, _ in running]
        self.init.add(f"for _ in range({self._repeat(stage)}):")
        self.init.level += 1
        self.init.add(f"{container}.append({self.fw.class_name(ref)}({', '.join(call_args)}))")
        binding_shapes = [list(s) for s in in_shapes]
        for _, var, i, d in running:
            binding_shapes[i][d] = built(var)
        grown = self._child_outputs(ref, stage, binding_shapes, len(outs))
        for name, var, i, d in running:
            new = py_size(grown[0][d]) if grown and grown[0] and d < len(grown[0]) else None
            if new is None:
                new = f"{container}[-1].{exposed_attr(0, d, len(in_shapes[i]))}"
                self.fw.exposed.setdefault(key, set()).add((0, d, len(in_shapes[i])))
            self._use_size_args(new)
            self.init.add(f"{var} = {new}")
        self.init.level -= 1
        out_shapes = self._fill([list(s) for s in binding_shapes][:len(outs)], outputs, stage)
        if not self.sequential:
            if stage.label and not stage.label_parts:
                self.layers[stage.label] = container
            self._block_call(stage, inputs, outs, fwd_container, len(inputs) > 1, self._comment(outputs, out_shapes))
        return out_shapes

    def _child_dim(self, key: DefKey, attr: str, out_index: int, d: int, rank: int, known: str | None) -> str | None:
        """A size of a child block's output: known here, or read from the child (`self.layer1.out_channels`)
        -- also where only the compiled uses agree on a channel or feature count (it may follow
        from parameters the child knows)."""
        if d == 0 or known is not None and not (tracked_dim(d, rank) and any(s.startswith("~") for s in known.symbols())):
            return known
        token = f"{attr}.{exposed_attr(out_index, d, rank)}"
        self.exposure_tokens[token] = (key, out_index, d, rank)
        if not attr.startswith("self."):
            self.placeholders.add(token)  # `getattr(self, f"layer{i}").out_channels`: no size for a comment
        return built(token)

    def _note_exposed(self, text: str) -> None:
        read = expression_attributes(text)
        for token, (key, out_index, d, rank) in self.exposure_tokens.items():
            if token in read:
                self.fw.exposed.setdefault(key, set()).add((out_index, d, rank))

    def _out_dim(self, out_index: int, dim: int) -> str:
        shape = self.shapes.get(self.outputs[out_index]) if out_index < len(self.outputs) else None
        if not shape or dim >= len(shape) or py_size(shape[dim]) is None:
            raise emit_error(self.d.name_span, f"the output size of `{self.d.name}` follows from no parameter")
        return self._written(shape[dim])

    # --- layer values (let tower = Tower(64); labels applied again) ------------------------
    def layer_stage(self, stage: ast.Stage, name: str, inputs, shapes, outs) -> list:
        if name in self.pending_layers:
            expr = self.pending_layers.pop(name)
            callee = callee_qualname(expr)
            fake = ast.Stage(name, callee, expr.args, None, stage.span, stage.span)
            if len(callee) == 1 and callee[0] in OPS:
                return self.op_stage(fake, OPS[callee[0]], inputs, shapes, outs)
            ref = self.fw.resolved.lookup_def(self.ref.module, callee)
            return self.block_stage(fake, ref, inputs, shapes, outs)
        attr = self.layers.get(name, f"self.{name}")
        if name in self.params:
            self.fwd_params.add(name)
        out_shapes = self._reapplied_sizes(name, stage, shapes, len(outs))
        self.fwd.add(f"{', '.join(outs)} = {attr}({', '.join(inputs)})")
        return out_shapes

    def _reapplied_sizes(self, name: str, stage: ast.Stage, shapes, n_out: int) -> list:
        """A labelled layer applied again (`-> embed`): the sizes its op or block gives these inputs."""
        layer, first = self.layer_stages.get(name, (None, None))
        if isinstance(layer, OpDef):
            execs = self.fw.index.op_execs(self.insts, stage.span)
            in_shapes = self._fill(shapes, [(i, n.inputs) for i, n in execs], stage)
            out = self._infer(layer, first, execs, in_shapes, n_out)
            return self._fill(out, [(i, n.outputs) for i, n in execs], stage)
        if layer is not None:
            execs = self.fw.index.call_execs(self.insts, stage.span)
            in_shapes = self._fill(shapes, [(i, c.inputs) for i, c in execs], stage)
            return self._fill(self._child_outputs(layer, first, in_shapes, n_out),
                              [(i, c.outputs) for i, c in execs], stage)
        return [None] * n_out  # a layer passed in as a parameter: what it makes of these inputs is its own

    # --- sizes ---------------------------------------------------------------------------
    def _repeat(self, stage: ast.Stage) -> str | None:
        return py_expr(stage.repeat, self.init_name) if stage.repeat is not None else None

    # --- comments ------------------------------------------------------------------------
    def _comment(self, io: list[tuple[Any, tuple[int, ...]]], tracked: list) -> str:
        """`  # (B, cout, ?, ?)`: each size as it holds for every instance of the class, else `?`."""
        if not io:
            return ""
        parts = []
        for k in range(len(io[0][1])):
            rank = len(io[0][0].graph.values[io[0][1][k]].type.shape)
            sizes = tracked[k] if k < len(tracked) and tracked[k] else [None] * rank
            dims = [comment_size(d, self.placeholders) for d in sizes]
            parts.append("(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")")
        return "  # " + ", ".join(parts)

    # --- weights initialization ----------------------------------------------------------
    def _tie_and_init(self) -> None:
        """`@init(...)`: a module-level init function (one per scheme in the file), applied last."""
        scheme = init_scheme(self.d)
        if self.d.kind == "network" and scheme.scheme != "default":
            name = "init_" + "_".join([scheme.scheme, *(f"{k}_{v}" for k, v in scheme.options)])
            name = re.sub(r"\W", "_", name)
            self.fw.init_functions[name] = INIT_FUNCTIONS[scheme.scheme](name, dict(scheme.options))
            self.init.add(f"self.apply({name})")


def _agreed(a: Sizes | None, b: Sizes | None) -> Sizes | None:
    """The sizes two branches give a tensor, where they are the same; None elsewhere."""
    if a is None or b is None or len(a) != len(b):
        return None
    return [x if x == y else None for x, y in zip(a, b, strict=True)]


def _copy_ends(execs: list[tuple[Instance, Any]]) -> tuple[list, list]:
    """The first and the last copy of `op * n` in each instance: what reads the stage's inputs and
    what writes its outputs (the copies between see other sizes)."""
    by_instance: dict[int, list] = {}
    for inst, node in execs:
        by_instance.setdefault(id(inst), []).append((inst, node))
    ends = [sorted(group, key=lambda e: e[1].id) for group in by_instance.values()]
    return [group[0] for group in ends], [group[-1] for group in ends]
