"""The sizes half of the class writer: every tensor's sizes in the class's own terms.

`SizeTracking` is mixed into `ClassWriter` (classes.py), which writes the statements; this part
decides what each size is (sizes.py explains the symbols): the inputs' sizes (the declared type,
a parameter every caller sets to it, a size argument where a caller computes it, what every use
agrees on), each stage's output sizes (the op's own shape rule, or the child class's sizes with
this stage's arguments put in), running size variables across loops and branches, and the check
of every size against what the IR says each execution sees. What callers pass is learned in one
round of writing the file and read in the next (FileWriter.heard), so that a class never writes
a constant that a parameter of its caller decides.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import EmitError
from ...ir.dims import Dim
from ...ops import OpDef
from ...passes.resolve import DefRef
from ...syntax import ast
from .code import expression_names
from .instances import Instance
from .sizes import (UNKNOWN, Size, Sizes, built, infer_sizes, is_proven, observed, placeholder_types, py_size,
                    spec_names, spec_size, substitute, trial_symbol)
from .text import dim_word, emit_error, rebound, tracked_dim

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
    _changed: list[set[tuple[str, int]]]
    _before: list[dict[tuple[str, int], Size]]

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

    def _matching_param(self, index: int, d: int) -> str | None:
        """The parameter every caller passes exactly this input size as (`BasicBlock(cout, cout)` on a
        tensor of `cout` channels: `cin`), so the class can name it. Decided at the call sites, in
        the callers' own terms -- never by values that merely happen to be equal (`pool_after=1` on
        a 1-channel input)."""
        names = self.fw.heard[1].get(self.key, {}).get((index, d), set())
        return next((p.name for p in self.d.params if p.name in names), None)

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
    def _input_sizes(self, s: ast.Input, index: int) -> Sizes:
        """The sizes an input starts as: what its declared type says, where that is a literal or
        an expression of parameters (`f32[B, code, 1, 1]`: the IR checks every use against it);
        else a size every use shares (`B`, `T`, a constant) -- a constant channel or feature count
        only where every caller passes a constant, else a parameter equal to it or a size
        argument; a varying size as a parameter equal to it or a size argument; the batch dim
        unknown when it varies."""
        name = s.name
        dims = [inst.input_dims()[index] for inst in self.insts]
        rank = len(dims[0])
        varying = self.fw.heard[0].get(self.key, set())
        declared = self._declared_sizes(s, rank)
        shape: Sizes = []
        for d in range(rank):
            values = {x[d] for x in dims}
            same = values.pop() if len(values) == 1 else None
            tracked = tracked_dim(d, rank)
            if declared[d] is not None:
                shape.append(declared[d])
            elif same is not None and (self.d.kind == "network" or not same.is_const):
                shape.append(same)
            elif same is not None and not (tracked and (index, d) in varying):
                # even a constant size reads better as the parameter it equals (`nn.LayerNorm(d)`)
                named = self._matching_param(index, d) if tracked else None
                shape.append(built(named) if named else observed(same.value, f"{index}:{d}"))
            elif d == 0 and same is None:
                shape.append(None)
            else:
                arg = self._matching_param(index, d) or self._size_arg_name(name, d, rank)
                self.placeholders.add(arg)
                shape.append(built(arg))
        return shape

    def _declared_sizes(self, s: ast.Input, rank: int) -> list[Size]:
        """Per dim, the declared size where it is a literal or uses only parameters, else None."""
        if s.type is None or len(s.type.dims) != rank:
            return [None] * rank
        out: list[Size] = []
        for e in s.type.dims:
            names = set() if isinstance(e, ast.DimExample) else spec_names(e)
            if isinstance(e, ast.DimExample) or not names <= self.params or not self._int_params(names):
                out.append(None)
            else:
                out.append(spec_size(e, lambda n: n))
        return out

    def _int_params(self, names: set[str]) -> bool:
        return all(self._int_param(n) or self.d.kind == "network" for n in names)

    def _note_input_sizes(self, ref: DefRef, stage: ast.Stage, in_shapes: list[Sizes]) -> None:
        """Tell a child, per channel/feature size of its inputs, whether this call passes it as an
        expression (then the child takes it as an argument instead of writing the constant it
        sees) and which of the child's parameters this call sets to exactly that size."""
        key = (ref.module, ref.name)
        args = {p.name: a.value for p, a in zip(ref.node.params, [a for a in stage.args or () if a.name is None])}
        args.update({a.name: a.value for a in stage.args or () if a.name is not None})
        given = {name: spec_size(e, self.init_name) for name, e in args.items() if self._int_valued(e)}
        matches = self.fw.param_matches.setdefault(key, {})
        for i, shape in enumerate(in_shapes):
            for d, size in enumerate(shape or ()):
                if not tracked_dim(d, len(shape)):
                    continue
                if size is not None and not is_proven(size):
                    self.fw.varying_inputs.setdefault(key, set()).add((i, d))
                here = {name for name, value in given.items() if size is not None and value == size}
                matches[(i, d)] = here if (i, d) not in matches else matches[(i, d)] & here

    def _int_valued(self, e: ast.Expr) -> bool:
        """A spec expression that is an integer in this class: a literal, or arithmetic of integer
        parameters (what a size can be compared with)."""
        if isinstance(e, ast.Literal):
            return type(e.value) is int
        names = spec_names(e)
        return bool(names) and all(self._int_param(n) for n in names) and not isinstance(e, ast.ListExpr)

    def _loop_analysis(self, s: ast.For, carried: set[str]) -> tuple[set[tuple[str, int]], dict]:
        """What the loop body does to the sizes of the tensors it carries, found by writing the body
        once on symbols and throwing that away:
          - the channel/feature sizes it leaves as they were (BasicStage's `cout` blocks), which the
            loop proper can then use as they are (and pass to a block by name);
          - for the other sizes (spatial ones, not tracked in loops), their size after a loop that
            runs a fixed number of times with a body that maps them the same way each time (four
            stride-2 convolutions: (h - 1)//2 + 1, four times)."""
        if not carried:
            return set(), {}
        saved = self._snapshot()
        try:
            entering = {(var, d): size for var in carried for d, size in enumerate(self.shapes[var])}
            self._materialize(carried, trial=True)
            running = dict(self._running[-1])
            self.loops.append((s.names, s.iterable))
            self._indented(lambda: (self.visit_body(s.body), self._reassign(carried)))
            self.loops.pop()
            changed, lost = self._changed[-1], self._lost[-1]
            ends = {(var, d): size for var in carried for d, size in enumerate(self.shapes[var])}
            self._restore(carried)
        except EmitError:
            return set(), {}
        finally:
            self._rollback(saved)
        keep = {k for k in running if k not in changed and k not in lost}
        return keep, self._iterated(s, entering, ends)

    def _iterated(self, s: ast.For, entering: dict, ends: dict) -> dict:
        """Sizes after the loop by applying the body's map `trips` times, where the map reads only
        the size itself and what stays fixed through the loop."""
        trips = self._trip_count(s)
        bound = set(s.names) | {n for st in s.body for n in rebound((st,))}
        out = {}
        for (var, d), end in ends.items():
            symbol = trial_symbol(var, d).symbols().pop()
            start = entering.get((var, d))
            if trips is None or end is None or start is None or symbol not in end.symbols():
                continue
            if any(x.startswith("=") and x[1:] in bound for x in end.symbols() - {symbol}):
                continue  # the map reads the loop variable or something the body binds
            size = start
            for _ in range(trips):
                size = end.substitute({symbol: size})
            out[(var, d)] = size
        return out

    def _trip_count(self, s: ast.For) -> int | None:
        """How many times the loop runs, when that cannot depend on a parameter (the iterable uses
        literals and builtins only): the number of executions of its first stage, per instance."""
        from ...builtins import BUILTINS

        if not spec_names(s.iterable) <= set(BUILTINS):
            return None
        first = next((st for st in s.body if isinstance(st, (ast.Bind, ast.Output)) and st.chain is not None
                      and st.chain.stages), None)
        if first is None:
            return None
        span = first.chain.stages[0].span
        counts = set()
        for inst in self.insts:
            ops = self.fw.index.op_execs([inst], span)
            calls = self.fw.index.call_execs([inst], span)
            counts.add(len(ops) + len(calls))
        return counts.pop() if len(counts) == 1 else None

    _STATE = ("shapes", "fwd_params", "layers", "layer_stages", "pending_layers", "size_args", "helpers", "exposure_tokens",
              "fwd_lets", "placeholders", "assigned", "numbered_from_zero", "outputs", "tensor_refs",
              "counter", "fwd_attrs")

    def _snapshot(self) -> dict:
        """What writing statements changes, for `_loop_invariant`'s trial run."""
        import copy

        return {"self": {k: copy.deepcopy(getattr(self, k)) for k in self._STATE},
                "init": (list(self.init.entries), self.init.level), "fwd": (list(self.fwd.entries), self.fwd.level),
                "fw": copy.deepcopy((self.fw.exposed, self.fw.varying_inputs, self.fw.param_matches))}

    def _rollback(self, saved: dict) -> None:
        for k, v in saved["self"].items():
            setattr(self, k, v)
        self.init.entries, self.init.level = saved["init"]
        self.fwd.entries, self.fwd.level = saved["fwd"]
        self.fw.exposed, self.fw.varying_inputs, self.fw.param_matches = saved["fw"]

    def _materialize(self, carried: set[str], keep: set[tuple[str, int]] = frozenset(), trial: bool = False,
                     branch: bool = False) -> None:
        """Before a loop or branch: each tracked size of a tensor it re-binds moves into a running
        variable (`h_channels = 64`), but for those known to stay as they are (`keep`); the others
        become unknown inside -- in a trial run (`_loop_analysis`), symbols that say what the body
        does to them."""
        running: dict[tuple[str, int], str] = {}
        before: dict[tuple[str, int], Size] = {}
        for var in sorted(carried):
            shape = self.shapes[var]
            for d, size in enumerate(shape):
                if (var, d) in keep:
                    before[(var, d)] = size
                    continue
                text = py_size(size) if tracked_dim(d, len(shape)) else None
                if text is None:
                    # only channels/features are tracked, and only printable sizes; a branch leaves
                    # the others as they are (what both paths agree on is merged after it)
                    if not branch:
                        shape[d] = trial_symbol(var, d) if trial and size is not None else None
                    continue
                name = f"{var}_{dim_word(d, len(shape))}"
                self.placeholders.add(name)
                if built(name) != size:
                    self.init.add(f"{name} = {self._written(size)}")
                before[(var, d)] = size
                shape[d] = built(name)
                running[(var, d)] = name
        self._running.append(running)
        self._before.append(before)
        self._lost.append(set())  # (var, dim) whose new size the loop or branch could not express
        self._changed.append(set())  # (var, dim) the loop or branch gives another size

    def _reassign(self, carried: set[str]) -> None:
        """At the end of a loop or branch body: each running variable gets the size it has now."""
        for (var, d), size in self._before[-1].items():  # kept sizes must have stayed what they were
            if (var, d) not in self._running[-1] and self.shapes[var][d] != size:
                self._lost[-1].add((var, d))
        for (var, d), name in sorted(self._running[-1].items()):
            size = self.shapes[var][d] if var in self.shapes and d < len(self.shapes[var]) else None
            if size == built(name) or size == self._before[-1][(var, d)]:
                continue
            self._changed[-1].add((var, d))
            if py_size(size) is None:
                self._lost[-1].add((var, d))
            else:
                self.init.add(f"{name} = {self._written(size)}")

    def _restore(self, carried: set[str]) -> None:
        """After a loop or branch: each carried size is its running variable, or unknown where the
        loop or branch changed it without an expression (the variable would hold a stale value)."""
        running, lost, changed = self._running.pop(), self._lost.pop(), self._changed.pop()
        before = self._before.pop()
        if self._changed:  # the same variable, reassigned in here, is reassigned for the enclosing level too
            self._changed[-1] |= {k for k in changed if k in self._running[-1]}
        for var in sorted(carried):
            rank = len(self.shapes[var]) if self.shapes.get(var) is not None else 0
            self.shapes[var] = [self._after(var, d, running, lost, changed, before) for d in range(rank)]

    @staticmethod
    def _after(var: str, d: int, running: dict, lost: set, changed: set, before: dict) -> Size:
        if (var, d) in lost or (var, d) not in before:
            return None
        if (var, d) not in running:  # kept: known to stay what it was
            return before[(var, d)]
        if (var, d) not in changed:  # every path leaves it as it was: the size itself, not its variable
            return before[(var, d)]
        return built(running[(var, d)])

    def _written(self, size: Size) -> str:
        """A size as `__init__` source, noting the size arguments and child attributes it reads."""
        text = py_size(size)
        assert text is not None, size
        self._use_size_args(text)
        self._note_exposed(text)
        return text

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
            elif self._int_valued(e) and _int_tuples(values):
                # an int the op repeats per dim (`padding=(kernel - 1) // 2`)
                out[p.name] = (spec_size(e, self.init_name),) * len(values[0])
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
        return all(_is_int(self._param_values(inst).get(name)) for inst in self.insts)

    def _param_values(self, inst: Instance) -> dict[str, Any]:
        """The parameters' values in an instance: its call's arguments, or for a network compiled
        on its own the values it was expanded with."""
        return dict(inst.call.args) if inst.call is not None else dict(inst.graph.params)

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
        env.update({f"={k}": v for k, v in self._param_values(inst).items() if _is_int(v)})
        dims = inst.input_dims()
        for name, (i, d) in self.size_arg_inputs.items():
            if i < len(dims) and dims[i][d].is_const:
                env[f"={name}"] = dims[i][d].value
        return env


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_tuple(v: Any, n: int | None = None) -> bool:
    return isinstance(v, tuple) and all(_is_int(x) for x in v) and (n is None or len(v) == n)


def _int_tuples(values: list[Any]) -> bool:
    """Tuples of integers, all of one length (an attribute the op repeats per dim, as executed)."""
    return bool(values) and isinstance(values[0], tuple) and all(_int_tuple(v, len(values[0])) for v in values)


def _const_if_fixed(d: Dim) -> int | Dim:
    """A size that simplified to a constant (`c - c + 2`) as that int, as rules expect of attributes."""
    return d.value if d.is_const else d
