"""The sizes half of the class writer: every tensor's sizes in the class's own terms.

`SizeTracking` is mixed into `ClassWriter` (classes.py), which writes the statements; this part
decides what each size is (sizes.py explains the symbols): the inputs' sizes (a parameter, a
size argument, what every use agrees on), each stage's output sizes (the op's own shape rule,
or the child class's sizes with this stage's arguments put in), running size variables across
loops and branches, and the check of every size against what the IR says each execution sees.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...ir.dims import Dim
from ...ops import OpDef
from ...passes.resolve import DefRef
from ...syntax import ast
from .code import expression_names
from .instances import Instance
from .sizes import (UNKNOWN, Size, Sizes, built, infer_sizes, is_proven, observed, placeholder_types, py_size,
                    spec_names, spec_size, substitute)
from .text import dim_word, emit_error, tracked_dim

if TYPE_CHECKING:
    from .file import FileWriter


class SizeTracking:
    """Size bookkeeping of one class; see the module docstring. Expects ClassWriter's fields."""

    fw: FileWriter
    d: ast.Def
    insts: list[Instance]
    shapes: dict[str, Sizes]
    initial_shapes: dict[str, Sizes]
    params: set[str]
    placeholders: set[str]
    inputs: list[str]
    size_args: list[tuple[str, int, int]]
    size_arg_inputs: dict[str, tuple[int, int]]
    _running: list[dict[tuple[str, int], str]]
    _lost: list[set[tuple[str, int]]]

    def _input_symbols(self) -> dict[str, tuple[int, int]]:
        """The symbols this class's input sizes start as (size arguments, observed sizes), by
        (input, dim): a caller substitutes its own sizes for them."""
        out = {f"={name}": where for name, where in self.size_arg_inputs.items()}
        for i, name in enumerate(self.inputs):
            for d, size in enumerate(self.initial_shapes.get(name) or ()):
                for s in size.symbols() if size is not None else ():
                    if s.startswith("~") and s.endswith(f":{i}:{d}"):
                        out[s] = (i, d)
        return out

    def _matching_param(self, dims: list[tuple[Dim, ...]], d: int) -> str | None:
        """A parameter whose value equals this input dim in every instance (`cin` for the channels)."""
        for p in self.d.params:
            values = [dict(inst.call.args).get(p.name) if inst.call else None for inst in self.insts]
            if all(isinstance(v, int) and not isinstance(v, bool) and x[d] == Dim.const(v)
                   for v, x in zip(values, dims)):
                return p.name
        return None

    def _size_arg_name(self, var: str, d: int, rank: int) -> str:
        single = sum(1 for st in self.d.body if isinstance(st, ast.Input)) == 1
        if d == rank - 1 and (rank == 2 or rank == 3):
            name = "in_features" if single else f"{var}_features"
        elif d == 1:
            name = "in_channels" if single else f"{var}_channels"
        else:
            name = f"{var}_size{d}"
        self.size_arg_inputs[name] = (len(self.inputs) - 1, d)
        return name

    def _use_size_args(self, text: str) -> None:
        for name, (i, d) in self.size_arg_inputs.items():
            if name in expression_names(text) and all(a[0] != name for a in self.size_args):
                self.size_args.append((name, i, d))

    # running size variables: a tensor re-bound in a loop or branch keeps its sizes in variables
    def _materialize(self, carried: set[str]) -> None:
        """Before a loop or branch: each tracked size of a tensor it re-binds moves into a running
        variable (`h_channels = 64`); the others become unknown inside."""
        running: dict[tuple[str, int], str] = {}
        for var in sorted(carried):
            shape = self.shapes[var]
            for d, size in enumerate(shape):
                text = py_size(size) if tracked_dim(d, len(shape)) else None
                if text is None:
                    shape[d] = None  # only channels/features are tracked, and only printable sizes
                    continue
                name = f"{var}_{dim_word(d, len(shape))}"
                self.placeholders.add(name)
                if built(name) != size:
                    self.init.add(f"{name} = {text}")
                shape[d] = built(name)
                running[(var, d)] = name
        self._running.append(running)
        self._lost.append(set())  # (var, dim) whose new size the loop or branch could not express

    def _reassign(self, carried: set[str]) -> None:
        """At the end of a loop or branch body: each running variable gets the size it has now."""
        for (var, d), name in sorted(self._running[-1].items()):
            size = self.shapes[var][d] if var in self.shapes and d < len(self.shapes[var]) else None
            if size == built(name):
                continue
            text = py_size(size)
            if text is None:
                self._lost[-1].add((var, d))
            else:
                self.init.add(f"{name} = {text}")

    def _restore(self, carried: set[str]) -> None:
        """After a loop or branch: each carried size is its running variable, or unknown where the
        loop or branch changed it without an expression (the variable would hold a stale value)."""
        running, lost = self._running.pop(), self._lost.pop()
        for var in sorted(carried):
            rank = len(self.shapes[var]) if self.shapes.get(var) is not None else 0
            self.shapes[var] = [built(running[(var, d)]) if (var, d) in running and (var, d) not in lost else None
                                for d in range(rank)]

    def _infer(self, op: OpDef, stage: ast.Stage, execs, in_shapes: list[Sizes], n_out: int) -> list[Sizes | None]:
        """The op's own shape rule on this class's sizes (see sizes.py)."""
        if any(s is None for s in in_shapes):
            return [None] * n_out
        if execs:
            inst, node = execs[0]
            dtypes = [inst.graph.values[v].type.dtype for v in node.inputs]
            attrs = self._symbolic_attrs(op, stage, [n.attr for _, n in execs])
        else:  # a branch no instance takes: what the spec's own expressions give
            dtypes = ["f32"] * len(in_shapes)
            attrs = self._symbolic_attrs(op, stage, [self._literal_attrs(op, stage)])
        return infer_sizes(op, attrs, placeholder_types(dtypes, in_shapes), n_out)

    def _symbolic_attrs(self, op: OpDef, stage: ast.Stage, executed: list[dict[str, Any]]) -> dict[str, Any]:
        """Each attribute as its value (a literal, or what every use agrees on), as a size of this
        class (`out=cout` -> =cout, `kernel=k` -> (=k, =k)), or UNKNOWN."""
        given = self._given(op, stage)
        out: dict[str, Any] = {}
        for p in op.params:
            values = [a.get(p.name) for a in executed]
            known = not any(v is UNKNOWN for v in values)
            agreed = values[0] if known and all(v == values[0] for v in values) else UNKNOWN
            e = given.get(p.name)
            if e is None or not spec_names(e):
                out[p.name] = agreed
            elif all(_is_int(v) for v in values):
                out[p.name] = _const_if_fixed(spec_size(e, self.init_name))
            elif isinstance(e, ast.ListExpr) and all(_int_tuple(v, len(e.items)) for v in values):
                out[p.name] = tuple(spec_size(x, self.init_name) for x in e.items)
            elif isinstance(e, ast.Name) and self._int_param(e.id) and all(_int_tuple(v) for v in values):
                out[p.name] = (spec_size(e, self.init_name),) * len(values[0])  # an int the op repeats per dim
            else:
                out[p.name] = agreed
        return out

    def _literal_attrs(self, op: OpDef, stage: ast.Stage) -> dict[str, Any]:
        """The attributes as far as literals and defaults give them (UNKNOWN elsewhere)."""
        from ...ops.table import REQUIRED

        given = self._given(op, stage)
        out: dict[str, Any] = {}
        for p in op.params:
            e = given.get(p.name)
            if e is not None and not isinstance(e, ast.Literal):
                out[p.name] = self._unexecuted_size(p, e)
                continue
            raw = p.default if e is None else e.value
            try:
                out[p.name] = p.check(raw) if raw is not REQUIRED else UNKNOWN
            except Exception:  # noqa: BLE001 - a validator's complaint: the value is not known here
                out[p.name] = UNKNOWN
        return out

    def _unexecuted_size(self, p, e: ast.Expr) -> Any:
        """A non-literal attribute no execution shows: a size of this class if the parameter takes
        an integer (`conv2d(v, 3)` -> =v), else UNKNOWN."""
        try:
            probe = p.check(1)
        except Exception:  # noqa: BLE001 - the parameter takes no integer
            return UNKNOWN
        if _is_int(probe):
            return spec_size(e, self.init_name)
        if _int_tuple(probe) and isinstance(e, ast.ListExpr) and len(e.items) == len(probe):
            return tuple(spec_size(x, self.init_name) for x in e.items)
        return UNKNOWN

    def _int_param(self, name: str) -> bool:
        """A parameter of this def that holds an integer in every instance."""
        if name not in self.params:
            return False
        return all(inst.call is not None and _is_int(dict(inst.call.args).get(name)) for inst in self.insts)

    def _given(self, op: OpDef, stage: ast.Stage) -> dict[str, ast.Expr]:
        """The attributes the stage writes, by parameter name (`tie=` is not an attribute)."""
        given = {p.name: a.value for p, a in zip(op.params, [a for a in stage.args or () if a.name is None])}
        given.update({a.name: a.value for a in stage.args or () if a.name is not None and a.name != "tie"})
        return given

    def _child_outputs(self, ref: DefRef, stage: ast.Stage, in_shapes, n_out: int) -> list:
        """The child's output sizes in this class's terms: its sizes with its parameters and size
        arguments replaced by what this stage passes (integer parameters only)."""
        key = (ref.module, ref.name)
        exprs = self.fw.out_exprs.get(key)
        if not exprs:
            return [None] * n_out
        execs = self.fw.index.call_execs(self.insts, stage.span)
        args = {p.name: a.value for p, a in zip(ref.node.params, [a for a in stage.args or () if a.name is None])}
        args.update({a.name: a.value for a in stage.args or () if a.name is not None})
        binding: dict[str, Size] = {}
        defaults: dict[str, Size] = {}
        for p in ref.node.params:
            if not all(_is_int(dict(c.args).get(p.name)) for _, c in execs):
                continue
            if p.name in args:
                binding[f"={p.name}"] = spec_size(args[p.name], self.init_name)
            elif p.default is not None:
                defaults[f"={p.name}"] = spec_size(p.default, lambda n: f"={n}")  # in the child's terms (`4*d`)
        binding.update({name: substitute(size, binding) for name, size in defaults.items()})
        for symbol, (i, d) in self.fw.input_symbols.get(key, {}).items():  # the child's names for its input sizes
            if i < len(in_shapes) and in_shapes[i] is not None and d < len(in_shapes[i]):
                binding[symbol] = in_shapes[i][d]
        return [[substitute(e, binding) for e in shape] if shape else None for shape in exprs]

    def _fill(self, shapes: list, io: list[tuple[Instance, tuple[int, ...]]], stage: ast.Stage) -> list[Sizes]:
        """Per tensor, the tracked sizes, checked against what the IR says each execution sees:
          - a size of the IR's own kind (constants, runtime symbols) must equal it (else an
            emitter bug: refused);
          - a size in the class's terms that can be evaluated for an instance (its parameters,
            size arguments, observed sizes) must equal it there, or it is dropped as unknown;
          - an unknown size every execution agrees on becomes that size (`~N` for a constant).
        The copies of `X * n` each see other sizes: their sizes are checked only by their kind."""
        if not io:  # a branch no instance takes: only what the spec's expressions give
            return [list(sh) if sh else None for sh in shapes]
        out = []
        for k in range(len(io[0][1])):
            concrete = [(inst, inst.graph.values[vids[k]].type.shape) for inst, vids in io]
            rank = len(concrete[0][1])
            shape = shapes[k] if k < len(shapes) and shapes[k] is not None else [None] * rank
            if len(shape) != rank:
                raise emit_error(stage.span, f"a tensor of rank {rank} the emitter tracked with rank "
                                       f"{len(shape)} (an emitter bug)")
            out.append([self._checked(size, d, concrete, stage) for d, size in enumerate(shape)])
        return out

    def _checked(self, size: Size, d: int, concrete: list[tuple[Instance, tuple[Dim, ...]]], stage) -> Size:
        values = {shape[d] for _, shape in concrete}
        if size is None:
            same = next(iter(values)) if len(values) == 1 else None
            return None if same is None else observed(same.value) if same.is_const else same
        if is_proven(size):
            if values != {size}:
                raise emit_error(stage.span, f"dim {d} here: the emitter's size `{size}` disagrees with the IR's "
                                       f"{', '.join(sorted(map(str, values)))} (an emitter bug)")
            return size
        for inst, shape in concrete if stage.repeat is None else ():
            env = self._instance_env(inst, size)
            if shape[d].is_const and size.symbols() <= set(env) and size.evaluate(env) != shape[d].value:
                return self._checked(None, d, concrete, stage)  # a guess this instance refutes
        return size

    def _instance_env(self, inst: Instance, size: Dim) -> dict[str, int]:
        """The values this class's size symbols have in one instance: integer parameters, size
        arguments, observed sizes."""
        env = {s: int(s[1:].split(":")[0]) for s in size.symbols() if s.startswith("~")}
        if inst.call is not None:
            env.update({f"={k}": v for k, v in inst.call.args if _is_int(v)})
        dims = inst.input_dims()
        for name, (i, d) in self.size_arg_inputs.items():
            if i < len(dims) and dims[i][d].is_const:
                env[f"={name}"] = dims[i][d].value
        return env


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_tuple(v: Any, n: int | None = None) -> bool:
    return isinstance(v, tuple) and all(_is_int(x) for x in v) and (n is None or len(v) == n)


def _const_if_fixed(d: Dim) -> int | Dim:
    """A size that simplified to a constant (`c - c + 2`) as that int, as rules expect of attributes."""
    return d.value if d.is_const else d
