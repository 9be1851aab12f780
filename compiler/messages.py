"""Every user-facing message text, in one place (as mypy's messages.py).

Each function returns a `Diagnostic` (but the helpers for a note or a label, and the last
section's), and each code belongs to exactly one function (one message), so that `dlc explain
CODE` can say what went wrong and how to fix it (`compiler/explain/CODE.md`; tests/test_explain.py
checks that every code here has one and that its example really produces the code). Codes are
grouped by phase:

    E00xx syntax                E03xx block expansion
    E01xx files and imports     E04xx shapes and weights (checkpoints included)
    E02xx names and arguments   E05xx compile-time evaluation
    E07xx training definitions  E06xx limits of a backend (PyTorch, ONNX, TVM)

A code that is retired is never given to another message: E0402 ("dtype error", never emitted).

A problem text that comes from an op's own shape or argument rule (`ShapeError`, `ArgError`
in compiler/ops/) or from a built-in function's check (compiler/builtins.py) belongs to that
rule and is passed in as `problem`. The last sections hold the texts of `SizeError` (sizes
given for a graph's symbolic dims that do not fit it: command-line flags, no code, no span),
of `--weights-from` names that find no key map (usage errors too), and E0108's reasons.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .diagnostics import Diagnostic, Label, closest, did_you_mean
from .ops import OPS
from .source import Span

RETIRED = {"E0402": "dtype error (never emitted; a dtype an op cannot take is a shape error, E0401)"}

_PRETTY_TOKENS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string", "$END": "end of file",
    "COMP_OP": "a comparison", "ADD_OP": "`+` or `-`", "MUL_OP": "`*`, `/`, `//` or `%`",
}


def _pretty(tokens: Iterable[str]) -> str:
    names = sorted({_PRETTY_TOKENS.get(t, f"`{t}`") for t in tokens})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _shape(dims: Sequence[int]) -> str:
    return str(list(dims))


def _file_span(path: str) -> Span:
    """A whole file that is not a spec (a checkpoint): rendered as `--> path`, without an excerpt."""
    return Span(path, 0, 0, 0, 0)


# --- E00xx syntax -------------------------------------------------------------------------

def unexpected_token(span: Span, found: str, expected: list[str], keyword: str | None = None) -> Diagnostic:
    """`keyword`: the keyword the word before `found` probably misspells (`inptu x`)."""
    hint = f"did you mean `{keyword}`?" if keyword else f"expected one of: {_pretty(expected)}"
    return Diagnostic("E0001", f"syntax error: unexpected `{found}`", Label(span, "unexpected here"), help=hint)


def unexpected_char(span: Span, found: str, expected: list[str]) -> Diagnostic:
    help_text = f"expected one of: {_pretty(expected)}" if expected else None
    return Diagnostic("E0002", f"syntax error: unexpected character `{found}`", Label(span, "not valid here"),
                      help=help_text)


def unexpected_eof(span: Span, expected: list[str]) -> Diagnostic:
    return Diagnostic("E0003", "syntax error: unexpected end of file", Label(span, "file ends here"),
                      help=f"expected one of: {_pretty(expected)}")


def nesting_too_deep(span: Span, limit: int) -> Diagnostic:
    return Diagnostic("E0004", f"nesting too deep: more than {limit} levels of brackets, operators or bodies",
                      Label(span, f"level {limit + 1} starts here"),
                      help="give the inner parts names with `let`")


def unknown_escape(span: Span, escape: str) -> Diagnostic:
    return Diagnostic("E0005", f"unknown escape `{escape}` in a string", Label(span, "not an escape"),
                      help='a string takes two escapes, `\\"` (a quote) and `\\\\` (a backslash); write '
                           'other characters as they are')


# --- E01xx files and imports ----------------------------------------------------------

def cannot_read(span: Span, path: str, reason: str, imported: bool = True) -> Diagnostic:
    return Diagnostic("E0101", f"cannot read `{path}`: {reason}", Label(span, "imported here" if imported else ""))


def import_cycle(span: Span, cycle: list[str]) -> Diagnostic:
    return Diagnostic("E0102", "import cycle: " + " -> ".join(f"`{c}`" for c in cycle),
                      Label(span, "this import closes the cycle"),
                      help="move the shared definitions into a file that both can import")


def duplicate_definition(span: Span, name: str, first: Span) -> Diagnostic:
    return Diagnostic("E0103", f"`{name}` is defined more than once", Label(span, "redefined here"),
                      (Label(first, "first defined here"),))


def no_networks(span: Span, path: str) -> Diagnostic:
    return Diagnostic("E0104", f"`{path}` defines no network", Label(span, "in this file"),
                      help="a file needs at least one `network Name { ... }` to be compiled")


def unknown_model(span: Span, name: str, available: list[str]) -> Diagnostic:
    return Diagnostic("E0105", f"no network named `{name}`", Label(span, "in this file"),
                      notes=(f"networks here: {', '.join(f'`{a}`' for a in available)}",),
                      help=did_you_mean(name, available))


def import_not_found(span: Span, path: str, searched: list[str]) -> Diagnostic:
    return Diagnostic("E0106", f"cannot find imported file `{path}`", Label(span, "imported here"),
                      notes=tuple(f"looked in `{s}`" for s in searched))


def import_refused(span: Span, path: str, reason: str) -> Diagnostic:
    """`reason`: why a spec may not read this file (compiler/syntax/load.py); nothing of it was read."""
    return Diagnostic("E0109", f"cannot import `{path}`: {reason}", Label(span, "imported here"),
                      help="an import reads a `.arch` file beside the importing one or below its directory, "
                           "or one of the standard library's (`std/...`)")


def cannot_read_checkpoint(path: str, reason: str, torch_load: bool = False) -> Diagnostic:
    help = ("with `--torch-load`, a checkpoint is a `torch.save`d `state_dict`: tensor names to tensors"
            if torch_load else "a checkpoint is a safetensors file of the network's `state_dict`; a PyTorch "
            "pickle (`.pt`, `.pth`, `.bin`) is read with `--torch-load` (`torch.load(weights_only=True)`)")
    if path.endswith(".state.pt"):  # runtime/train/checkpoints.py's resume state
        help = ("this looks like the resume state of a `dlc train` run; its weights are `best.safetensors` "
                "and `last.safetensors` beside it")
    return Diagnostic("E0107", f"cannot read checkpoint `{path}`: {reason}", Label(_file_span(path), ""), help=help)


def not_a_state_dict(value: object) -> str:
    return f"it holds a `{type(value).__name__}`, not a state_dict (a dict of tensors)"


def not_a_tensor_entry(key: object, value: object) -> str:
    return f"`{key}` holds a `{type(value).__name__}`, not a tensor (save the model's `state_dict()` alone)"


def unsupported_tensor_dtype(key: str, dtype: str) -> str:
    return f"`{key}` is {dtype}, which numpy cannot hold; convert the checkpoint to float32 first"


def cannot_read_keymap(span: Span, reason: str) -> Diagnostic:
    return Diagnostic("E0108", f"cannot read key map `{span.file}`: {reason}", Label(span, "here" if span.line else ""),
                      help="a key map is a TOML file of `drop` patterns, `[[rename]]` rules (`from`, `to`, "
                           "`transpose`, `split`) and `[[fill]]` rules (`key`, `value`, `dtype`): README, "
                           "\"Pretrained weights\"")


# --- E02xx names and arguments --------------------------------------------------------

def unknown_callee(span: Span, name: str, candidates: Iterable[str]) -> Diagnostic:
    """The help names the closest candidate (never an op the compiler inserts itself) and, when
    that is an op, what the op computes (the first clause of its doc line in the op table): a
    near miss such as `relu8` must not be led to `relu`, a function of other semantics, unsaid."""
    close = closest(name, [c for c in candidates if c not in OPS or OPS[c].category != "internal"])
    hint = None if close is None else f"did you mean `{close}`?"
    if close is not None and close in OPS:
        hint = f"{hint} (`{close}`: {_first_clause(OPS[close].doc)})"
    return Diagnostic("E0201", f"unknown op `{name}`", Label(span, "not an op, block, network or layer"), help=hint)


def _first_clause(doc: str) -> str:
    """`doc` up to its first `; ` or `: ` outside brackets and backticks (what the op is, without
    the details that follow: "multi-head attention: self (x), ..." -> "multi-head attention")."""
    depth, quoted = 0, False
    for i, ch in enumerate(doc):
        quoted = quoted != (ch == "`")
        depth += 0 if quoted else (ch in "([") - (ch in ")]")
        if depth == 0 and not quoted and ch in ";:" and doc[i + 1:i + 2] == " ":
            return doc[:i]
    return doc


def undefined_name(span: Span, name: str, candidates: Iterable[str], what: str = "name") -> Diagnostic:
    """`what`: "name" for a compile-time value, "tensor" for a chain's source."""
    return Diagnostic("E0202", f"undefined {what} `{name}`", Label(span, "not defined here"),
                      help=did_you_mean(name, candidates))


def unknown_argument(span: Span, callee: str, name: str, accepted: list[str]) -> Diagnostic:
    hint = did_you_mean(name, accepted)
    return Diagnostic("E0203", f"`{callee}` has no parameter `{name}`", Label(span, "unknown parameter"),
                      notes=(f"`{callee}` takes: {', '.join(accepted) or 'no parameters'}",), help=hint)


def wrong_input_count(span: Span, callee: str, least: int, most: int, given: int) -> Diagnostic:
    """`most`: -1 for no upper bound (`concat`)."""
    expected = f"{least}" if least == most else f"{least} or more" if most == -1 else f"{least} to {most}"
    return Diagnostic("E0204", f"`{callee}` takes {expected} input tensor(s), {given} given",
                      Label(span, f"{given} tensor(s) flow in here"))


def wrong_output_count(span: Span, expected: int, given: int, callee: str | None = None,
                       outputs: Sequence[str] = ()) -> Diagnostic:
    """`callee` and its `outputs`: the block or network whose outputs the chain ends with, if it does."""
    def count(n: int, word: str) -> str:
        return f"{n} {word}" if n == 1 else f"{n} {word}s"
    notes = (f"`{callee}` outputs {', '.join(f'`{o}`' for o in outputs)}",) if callee and outputs else ()
    return Diagnostic("E0205", f"this chain produces {count(given, 'tensor')} but {count(expected, 'name')} "
                      f"{'is' if expected == 1 else 'are'} bound", Label(span, count(given, "output")), notes=notes)


def not_a_tensor(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0206", f"`{name}` is a compile-time value, not a tensor", Label(span, "a tensor is expected here"),
                      help="tensors come from `input` declarations and chain bindings")


def not_callable_layer(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0207", f"`{name}` is a tensor and cannot be applied to a tensor", Label(span, "applied here"))


def missing_output(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0208", f"`{name}` declares no `output`", Label(span, "defined here"),
                      help="add `output NAME` for the tensor(s) it returns")


def missing_input_type(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0209", f"network input `{name}` has no type", Label(span, "needs a type"),
                      help=f"write e.g. `input {name}: f32[B, 3, 224, 224]`")


def unknown_dtype(span: Span, dtype: str, known: list[str]) -> Diagnostic:
    return Diagnostic("E0210", f"unknown dtype `{dtype}`", Label(span, "not a dtype"),
                      help=did_you_mean(dtype, known) or f"dtypes: {', '.join(known)}")


def duplicate_label(span: Span, label: str, scope: str) -> Diagnostic:
    return Diagnostic("E0211", f"label `{label}` names two layers in `{scope}`", Label(span, "used again here"),
                      help="labels are layer names and must be unique in a block; inside a loop leave the "
                           "stage unlabeled (it is numbered) or label a block that holds the loop")


def missing_network_param(span: Span, network: str, name: str) -> Diagnostic:
    return Diagnostic("E0212", f"network `{network}` is compiled without a value for `{name}`",
                      Label(span, "no default"),
                      help=f"give `{name}` a default in the network's parameter list")


def unknown_decorator(span: Span, name: str, known: list[str]) -> Diagnostic:
    return Diagnostic("E0213", f"unknown decorator `@{name}`", Label(span, "not a decorator"),
                      help=did_you_mean(name, known) or f"decorators: {', '.join('@' + k for k in known)}")


def shadows_op(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0214", f"`{name}` is the name of a built-in op", Label(span, "cannot be redefined"),
                      help=f"rename it, e.g. `{name.capitalize()}Block`")


def used_before_definition(span: Span, name: str, later: Span) -> Diagnostic:
    return Diagnostic("E0215", f"`{name}` is used before it is defined", Label(span, "used here"),
                      (Label(later, "defined later here"),),
                      help="bindings run top to bottom; move the definition above its use")


def not_a_value(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0216", f"`{name}` is a tensor, not a compile-time value", Label(span, "used as a value"),
                      help="arguments in parentheses are compile-time values; tensors flow through `->`")


def too_many_arguments(span: Span, callee: str, given: int, accepted: int) -> Diagnostic:
    return Diagnostic("E0217", f"`{callee}` takes at most {accepted} positional argument(s), {given} given",
                      Label(span, "extra argument"))


def missing_argument(span: Span, callee: str, name: str) -> Diagnostic:
    return Diagnostic("E0218", f"`{callee}` is missing required argument `{name}`",
                      Label(span, f"`{name}` not given"))


def duplicate_argument(span: Span, callee: str, name: str) -> Diagnostic:
    return Diagnostic("E0219", f"argument `{name}` of `{callee}` is given twice", Label(span, "given again here"))


def bad_argument(span: Span, callee: str, name: str, problem: str) -> Diagnostic:
    """`problem`: the op parameter's own check (an `ArgError` from compiler/ops/)."""
    return Diagnostic("E0220", f"invalid argument `{name}` for `{callee}`: {problem}", Label(span, problem))


def positional_after_keyword(span: Span) -> Diagnostic:
    return Diagnostic("E0221", "positional argument after a keyword argument", Label(span, "here"),
                      help="write the positional arguments first, or name this one too")


def layer_takes_no_args(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0222", f"`{name}` is an existing layer and takes no arguments",
                      Label(span, "arguments given here"),
                      help=f"apply it as `-> {name}`; to make a new layer, call its op or block instead")


def not_a_layer(span: Span, name: str, what: str) -> Diagnostic:
    """`what`: the value `name` holds, described (`describe` in passes/evaluate.py)."""
    return Diagnostic("E0223", f"`{name}` is {what}, not a layer", Label(span, "applied here"))


def init_without_scheme(span: Span, schemes: Iterable[str]) -> Diagnostic:
    return Diagnostic("E0224", "`@init` needs a scheme name first", Label(span, "no scheme"),
                      help=f"schemes: {', '.join(schemes)}, e.g. `@init(\"normal\", std=0.02)`")


def unknown_init_scheme(span: Span, scheme: str, schemes: list[str]) -> Diagnostic:
    return Diagnostic("E0225", f"unknown `@init` scheme \"{scheme}\"", Label(span, "not a scheme"),
                      notes=(f"schemes: {', '.join(schemes)}",), help=did_you_mean(scheme, schemes))


def unknown_init_option(span: Span, scheme: str, option: str, accepted: Sequence[str]) -> Diagnostic:
    return Diagnostic("E0226", f"`@init(\"{scheme}\")` takes no option `{option}`", Label(span, "not an option"),
                      notes=(f"\"{scheme}\" takes: {', '.join(accepted) or 'no options'}",),
                      help=did_you_mean(option, accepted))


def init_option_not_literal(span: Span, option: str) -> Diagnostic:
    return Diagnostic("E0227", f"`@init` option `{option}` must be a literal value", Label(span, "not a literal"),
                      help="write the number or string itself, e.g. `std=0.02`")


def reserved_name(span: Span, name: str, kind: str, why: str) -> Diagnostic:
    """`kind`: what declares it ("parameter", "label", "network", ...); `why`: compiler/names.py's reason."""
    article = "an" if kind[0] in "aeiou" else "a"
    return Diagnostic("E0228", f"`{name}` cannot be the name of {article} {kind}: {why}", Label(span, "declared here"),
                      help=f"rename it, e.g. `{name}_`")


# --- E03xx expansion ------------------------------------------------------------------

def _chain(names: Sequence[str]) -> str:
    return " -> ".join(f"`{n}`" if n != "..." else n for n in names)


def recursion_without_end(span: Span, name: str, depth: int, trace: list[str]) -> Diagnostic:
    """`trace`: the blocks from the network down to this instance; its ends are shown."""
    shown = [*trace[:3], "...", *trace[-2:]] if len(trace) > 5 else trace
    return Diagnostic("E0301", f"recursion without end: `{name}` is nested {depth} levels deep",
                      Label(span, "instantiated here"),
                      notes=(f"call chain: {_chain(shown)}",),
                      help="give the recursion a base case, e.g. `if depth > 0 { ... }`")


def instantiation_cycle(span: Span, name: str, trace: list[str]) -> Diagnostic:
    return Diagnostic("E0302", f"cycle: `{name}` instantiates itself with the same arguments",
                      Label(span, "instantiated here"),
                      notes=(f"cycle: {_chain(trace)}",),
                      help="a block or network may only use itself with arguments that move toward a base case")


def instance_note(name: str, span: Span) -> str:
    return f"in `{name}` instantiated at {span}"


# --- E04xx shapes and weights ---------------------------------------------------------

def shape_error(span: Span, op: str, problem: str, inputs: list[tuple[Span, str]], trace: list[str]) -> Diagnostic:
    """`problem`: the op's shape rule's own text (a `ShapeError` from compiler/ops/)."""
    secondary = tuple(Label(s, text) for s, text in inputs)
    return Diagnostic("E0401", f"shape error in `{op}`: {problem}", Label(span, problem),
                      secondary, notes=tuple(trace))


def input_shape(name: str | None, shape: str) -> str:
    """The label under an op's input in a shape error: "`a` has shape (B, 64, 32, 32)"."""
    return f"{f'`{name}`' if name else 'this'} has shape {shape}"


def shared_shape_mismatch(span: Span, param: str, expected: str, got: str, first: Span, tied: bool) -> Diagnostic:
    kind = "tied" if tied else "shared"
    hint = ("a tied weight must have the same shape in both layers" if tied
            else "a shared layer must see the same input sizes every time it is applied")
    return Diagnostic("E0403", f"{kind} weight `{param}` has shape {got} here but {expected} where it was created",
                      Label(span, f"needs {got}"), (Label(first, f"created with {expected}"),), help=hint)


def tie_needs_layer(span: Span) -> Diagnostic:
    return Diagnostic("E0404", "`tie` takes a layer that was applied earlier", Label(span, "not such a layer"),
                      help="label the layer whose weight is shared and name it, e.g. `tie=wte`")


def checkpoint_mismatch(path: str, network: str, network_span: Span, missing: list[tuple[str, tuple[int, ...]]],
                        wrong: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
                        extra: list[tuple[str, tuple[int, ...]]], origin: Mapping[str, str] | None = None,
                        problems: Sequence[str] = (), keymap: str | None = None) -> Diagnostic:
    """`wrong`: (key, shape in the checkpoint, shape the spec needs); `origin`: which source key a
    key map made each key of ("from `c_attn.weight`, transposed"); `problems`: source keys the
    key map could not transform."""
    origin = origin or {}

    def key(k: str) -> str:
        return f"`{k}` ({origin[k]})" if k in origin else f"`{k}`"

    notes = [*problems,
             *(f"missing key `{k}` (expected shape {_shape(s)})" for k, s in missing),
             *(f"key {key(k)} has shape {_shape(got)}, the spec needs {_shape(need)}" for k, got, need in wrong),
             *(f"unexpected key {key(k)} (shape {_shape(s)}): the spec has no such weight" for k, s in extra)]
    after = f" after the key map `{keymap}`" if keymap else ""
    help = (f"the key map `{keymap}` renames the checkpoint's keys to the network's weight names (`dlc summary "
            "--json` lists them with their shapes); a key that no rule of it matches keeps its name" if keymap else
            "its keys must be the network's weight names (the emitted module's `state_dict` keys; `dlc summary "
            "--json` lists them with their shapes); another implementation's need a key map (`--weights-from`)")
    return Diagnostic("E0405", f"checkpoint `{path}` does not fit `{network}`{after}",
                      Label(_file_span(path), f"{len(notes)} key(s) do not fit"),
                      (Label(network_span, f"`{network}` is defined here"),), tuple(notes), help=help)


def mapped_from(key: str, transposed: bool, part: tuple[int, int, int] | None) -> str:
    """How a key map made a key: `part` is (index from 1, parts, dim) of a split."""
    how = f"from `{key}`" + (", transposed" if transposed else "")
    return how + (f", part {part[0]} of {part[1]} along dim {part[2]}" if part else "")


def filled_by_keymap(value: float) -> str:
    return f"filled with {value} by the key map"


def keymap_collision(first: str, second: str, name: str) -> str:
    return f"`{first}` and `{second}` both become `{name}`"


def cannot_transpose(key: str, shape: tuple[int, ...]) -> str:
    return f"`{key}` has shape {_shape(shape)}: the key map transposes it, which takes a 2-D tensor"


def cannot_split(key: str, shape: tuple[int, ...], dim: int, parts: int) -> str:
    return f"`{key}` has shape {_shape(shape)}: dim {dim} does not split into {parts} equal parts"


def cannot_shift(key: str, value: str) -> str:
    return f"`{key}`: the key map shifts its capture `{value}`, which is not a number"


def tie_differs(alias: str, tied: str, alias_origin: str | None, tied_origin: str | None) -> str:
    first = f"`{alias}` ({alias_origin})" if alias_origin else f"`{alias}`"
    second = f"`{tied}` ({tied_origin})" if tied_origin else f"`{tied}`"
    return f"key {first} differs from {second}, which the spec ties it to (`tie=`)"


def symbolic_weight(span: Span, op: str, weight: str, shape: str) -> Diagnostic:
    return Diagnostic("E0406", f"weight `{weight}` of `{op}` would have symbolic shape {shape}",
                      Label(span, "its input has a symbolic size where the weight needs a fixed one"),
                      help="give that dimension of the input a fixed size")


def no_weight_to_tie(span: Span, op: str) -> Diagnostic:
    return Diagnostic("E0407", f"`{op}` has no weight to tie", Label(span, "`tie` given here"),
                      help="`tie` belongs on an op with a `weight` (`linear`, `embedding`, a convolution)")


# --- E05xx evaluation -----------------------------------------------------------------

def assertion_failed(span: Span, message: str | None) -> Diagnostic:
    return Diagnostic("E0501", f"assertion failed{': ' + message if message else ''}", Label(span, "is false"))


def builtin_error(span: Span, problem: str) -> Diagnostic:
    """`problem`: the built-in function's own check (an `EvalError` from compiler/builtins.py)."""
    return Diagnostic("E0502", problem, Label(span, "here"))


def cannot_index(span: Span, what: str, index: object) -> Diagnostic:
    return Diagnostic("E0503", f"cannot index {what} with {index!r}", Label(span, "here"),
                      help="only lists can be indexed, and only with an integer")


def index_out_of_range(span: Span, index: int, length: int) -> Diagnostic:
    return Diagnostic("E0504", f"index {index} is out of range for a list of {length}", Label(span, "here"))


def not_an_attribute(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0505", f"`{name}` is not an attribute of this value", Label(span, "here"),
                      help="only an import alias has attributes: `alias.Block` names a block of that file")


def builtin_takes_positional(span: Span) -> Diagnostic:
    return Diagnostic("E0506", "built-in functions take positional arguments only", Label(span, "here"))


def not_callable(span: Span, what: str) -> Diagnostic:
    return Diagnostic("E0507", f"{what} cannot be called", Label(span, "here"),
                      help="ops, blocks, networks and built-in functions can be called")


def needs_numbers(span: Span, op: str, what: str) -> Diagnostic:
    return Diagnostic("E0508", f"`{op}` needs numbers, got {what}", Label(span, "here"))


def division_by_zero(span: Span) -> Diagnostic:
    return Diagnostic("E0509", "division by zero", Label(span, "here"))


def let_cycle(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0510", f"`{name}` is defined in terms of itself", Label(span, "here"))


def bad_dimension(span: Span, value: object) -> Diagnostic:
    return Diagnostic("E0511", f"a dimension must be a positive integer, got {value!r}", Label(span, "here"))


def bad_dimension_division(span: Span) -> Diagnostic:
    return Diagnostic("E0512", "a dimension can only be divided by a positive integer", Label(span, "here"))


def for_needs_list(span: Span, value: object) -> Diagnostic:
    return Diagnostic("E0513", f"`for` needs a list, got {value!r}", Label(span, "here"))


def cannot_unpack(span: Span, item: object, names: int) -> Diagnostic:
    return Diagnostic("E0514", f"cannot unpack {item!r} into {names} names", Label(span, "here"))


def bad_repeat(span: Span, value: object) -> Diagnostic:
    return Diagnostic("E0515", f"a repeat count must be a whole number >= 0, got {value!r}", Label(span, "here"))


def chain_carries_values(span: Span) -> Diagnostic:
    return Diagnostic("E0516", "a chain can only carry tensors", Label(span, "here"),
                      help="a name that is a tensor on one branch of an `if` must be a tensor on the other too")


def builtin_arity(span: Span, name: str, given: int) -> Diagnostic:
    return Diagnostic("E0517", f"built-in `{name}` does not take {given} argument(s)", Label(span, "here"))


def builtin_failed(span: Span, name: str, problem: str) -> Diagnostic:
    """`problem`: what Python's implementation of the built-in said (`math domain error`)."""
    return Diagnostic("E0518", f"built-in `{name}` failed: {problem}", Label(span, "here"))


def unknown_function(span: Span, name: str, builtins: Sequence[str], layers: Iterable[str]) -> Diagnostic:
    """`builtins`: every built-in function (compiler/builtins.py); `layers`: the ops and defs in
    scope, which a call also names (a layer value), for "did you mean"."""
    return Diagnostic("E0519", f"unknown function `{name}`", Label(span, "not a built-in function, op or block"),
                      notes=(f"built-in functions: {', '.join(f'`{b}`' for b in builtins)}",),
                      help=did_you_mean(name, [*builtins, *layers]))


def bad_label_piece(span: Span, label: str, what: str) -> Diagnostic:
    """`what`: the value the piece in braces has, described (`describe` in passes/evaluate.py); it is
    in the label, so that a loop reports the piece once."""
    return Diagnostic("E0520", f"a piece of the numbered label `{label}` is not an integer or a name",
                      Label(span, f"this is {what}"),
                      help="a piece in braces is usually computed from a loop variable: `denselayer{i + 1}`")


def out_of_range(span: Span, problem: str) -> Diagnostic:
    """`problem`: compiler/limits.py's text (integer overflow, a float that is not finite, a list or
    repetition over its limit)."""
    return Diagnostic("E0522", f"compile-time value out of range: {problem}", Label(span, "here"),
                      help="the front end's limits are in docs/language.md, \"Limits\"")


def over_budget(span: Span, what: str, limit: str) -> Diagnostic:
    """`what`: the budget spent ("evaluation steps", "graph nodes", "time"); `limit`: its size."""
    return Diagnostic("E0523", f"the compilation used up its budget of {limit} {what}" if what != "time" else
                      f"the compilation ran out of time: its front end may take {limit}",
                      Label(span, "still expanding here"),
                      notes=("every network and training definition of a file share one budget; a loop, a "
                             "repetition or a recursion that makes more than the largest networks do stops here",),
                      help="look for a recursion that calls itself twice per level, a `for` over a huge "
                           "`range`, or a repetition count that is far too large")


def size_out_of_range(span: Span, problem: str) -> Diagnostic:
    """`problem`: the size and its limit (compiler/limits.py): a dimension, a weight, all weights."""
    return Diagnostic("E0524", f"size out of range: {problem}", Label(span, "declared here"),
                      help="the front end's limits are in docs/language.md, \"Limits\"")


def bad_initializer(span: Span, param: str, found: str, initializers: Sequence[str]) -> Diagnostic:
    """`found`: the name written (`xavier`), or the value it has, described."""
    return Diagnostic("E0521", f"parameter tensor `{param}` needs an initializer or a number, got {found}",
                      Label(span, "not an initializer"),
                      notes=(f"initializers: {', '.join(f'`{i}`' for i in initializers)}, or a number (every "
                             "entry that value)",),
                      help=did_you_mean(found.strip("`"), initializers))


# --- E06xx backend limits -------------------------------------------------------------

def emit_unsupported(span: Span, what: str) -> Diagnostic:
    return Diagnostic("E0601", f"the PyTorch emitter cannot express {what}", Label(span, "here"),
                      help="the spec is valid; this is a limit of `dlc emit torch` (see README)")


def no_onnx_form(span: Span, op: str, why: str) -> Diagnostic:
    return Diagnostic("E0602", f"`{op}` has no faithful ONNX form here: {why}", Label(span, "this op"),
                      help="the ONNX export refuses rather than emit a different computation (see README)")


def no_tvm_form(span: Span, network: str, why: str) -> Diagnostic:
    return Diagnostic("E0603", f"`{network}` cannot be compiled with TVM: {why}", Label(span, "this network"),
                      help="its PyTorch and ONNX exports work; the README lists the ops TVM's importer lacks")


# --- E07xx training definitions ---------------------------------------------------------

def train_unknown(span: Span, what: str, name: str, known: Sequence[str]) -> Diagnostic:
    """`what`: "data set", "optimizer", "schedule", "setting", "picture", "model"."""
    return Diagnostic("E0701", f"unknown {what} `{name}`", Label(span, f"not a known {what}"),
                      notes=(f"known: {', '.join(f'`{k}`' for k in known)}",) if known else (),
                      help=did_you_mean(name, known))


def train_bad_option(span: Span, owner: str, name: str, problem: str, known: Sequence[str] = ()) -> Diagnostic:
    """An argument of a data set, optimizer, schedule, picture or `config` that does not fit."""
    return Diagnostic("E0702", f"bad argument `{name}` of {owner}: {problem}", Label(span, problem),
                      help=did_you_mean(name, known) if known else None)


def train_missing(span: Span, train: str, what: str, hint: str) -> Diagnostic:
    return Diagnostic("E0703", f"train `{train}` has no {what}", Label(span, f"needs {what}"), help=hint)


def train_twice(span: Span, what: str, first: Span) -> Diagnostic:
    return Diagnostic("E0704", f"{what} is given more than once", Label(span, "given again here"),
                      (Label(first, "first given here"),))


def model_not_network(span: Span, name: str, kind: str) -> Diagnostic:
    return Diagnostic("E0705", f"`{name}` is {kind}, not a network", Label(span, "a model must be a network"),
                      help="`model NAME = Network(args)` trains a network of the spec (a block has no typed inputs)")


def objective_not_scalar(span: Span, name: str, found: str) -> Diagnostic:
    return Diagnostic("E0706", f"output `{name}` of a training step must be a float scalar, found {found}",
                      Label(span, f"is {found}"),
                      help="make it one number with a loss op (`cross_entropy`, `mse`, `kl_normal`, ...) or a mean "
                           "over every dim (`mean([0, 1])`)")


def data_field_mismatch(span: Span, name: str, declared: str, data: str, found: str) -> Diagnostic:
    return Diagnostic("E0707", f"input `{name}` does not fit data `{data}`: {found}",
                      Label(span, f"declared {declared}"))


def classes_mismatch(span: Span, field: str, data: str, classes: int, width: int) -> Diagnostic:
    return Diagnostic("E0708", f"data `{data}` has {classes} classes in `{field}`, but the logits have {width}",
                      Label(span, f"{width} classes here"),
                      help=f"give the network's head {classes} outputs")


def freeze_unknown(span: Span, model: str, path: str, known: Sequence[str]) -> Diagnostic:
    return Diagnostic("E0709", f"model `{model}` has no part `{path}` to freeze", Label(span, "no weights under this name"),
                      notes=(f"its top-level parts: {', '.join(f'`{k}`' for k in known)}",) if known else (),
                      help=did_you_mean(path, known))


def show_unfit(span: Span, kind: str, problem: str) -> Diagnostic:
    return Diagnostic("E0710", f"`{kind}` cannot be shown here: {problem}", Label(span, problem))


def pair_score_mismatch(span: Span, what: str, wants: str, found: str, made: Span, hint: str) -> Diagnostic:
    """A pair loss, metric or show given a distance where it takes a similarity, or the reverse
    (`wants`, `found`: "distance" or "similarity"; compiler/ops/metric_learning.py)."""
    return Diagnostic("E0720", f"{what} takes a {wants}, but the pair score it is given is a {found}",
                      Label(span, f"takes a {wants}"), (Label(made, f"the {found} is computed here"),),
                      notes=("a distance is small for a same pair, a similarity large",), help=hint)


def neighbours_unfit(span: Span, part: str, problem: str, label: str, help: str,
                     made: Span | None = None) -> Diagnostic:
    """`show neighbours(model.part)` whose part is no embedding table with one row per word of the
    data's vocabulary (compiler/passes/train_words.py); `made`: where the part is declared."""
    return Diagnostic("E0719", f"`neighbours` cannot read `{part}`: {problem}", Label(span, label),
                      (Label(made, "declared here"),) if made is not None else (), help=help)


def model_unused(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0711", f"model `{name}` is never used by a step", Label(span, "declared here"),
                      help=f"apply it in the objective (`y = x -> {name}`) or remove it")


def optimizers_overlap(span: Span, model: str, step: str, first: Span, first_step: str) -> Diagnostic:
    return Diagnostic("E0712", f"model `{model}` is updated by the optimizers of two steps, `{first_step}` and `{step}`",
                      Label(span, f"updates `{model}` again"), (Label(first, f"`{first_step}` updates `{model}` here"),),
                      help="each model is trained by one step's optimizer; another step reads it without updating it "
                           "(name the models each optimizer updates with `for`)")


def loss_ignores_model(span: Span, step: str, model: str, detached: bool) -> Diagnostic:
    why = ("it reads the model only through `detach`, which passes no gradient" if detached
           else "no gradient reaches its weights")
    return Diagnostic("E0713", f"the loss of step `{step}` does not depend on model `{model}`, which its optimizer updates",
                      Label(span, why),
                      help=f"compute the loss from `{model}`'s outputs, or update another model: `optimizer ... for M`")


def loss_reads_no_rival(span: Span, step: str, rivals: Sequence[str]) -> Diagnostic:
    names = ", ".join(f"`{r}`" for r in rivals)
    return Diagnostic("E0714", f"the loss of step `{step}` reads no output of {names}, which the other steps train",
                      Label(span, "plays against nothing"),
                      notes=("with several steps the steps play a game: a generator's loss is computed from the "
                             "discriminator's verdict on its samples",),
                      help=f"apply the other model to this step's output, e.g. `output loss = fake -> {rivals[0]} -> ...`"
                           ", or train the models in separate definitions")


def grad_unrelated(span: Span, x: str, detached: bool) -> Diagnostic:
    why = (f"reads `{x}` only through `detach`, which passes no gradient" if detached
           else f"is not computed from `{x}`")
    return Diagnostic("E0715", f"`grad` of a value that does not depend on `{x}`: the gradient is zero everywhere",
                      Label(span, f"the value {why}"),
                      help=f"differentiate a value computed from `{x}`: `y = {x} -> ...`, then `(y, {x}) -> grad`")


def translate_unfit_inputs(span: Span, problem: str) -> Diagnostic:
    """`show translate(...)`: the model is not applied to source and decoder-input ids of `data synthetic`."""
    return Diagnostic("E0721", f"`translate` cannot decode with this model: {problem}", Label(span, problem),
                      help="apply the model to the source and the decoder input of `data synthetic(...)` directly: "
                           "`logits = (src, tgt) -> net`")


def translate_unfit_logits(span: Span, found: str, problem: str) -> Diagnostic:
    """`show translate(...)`: the model's first output is not next-token logits (B, T, vocab)."""
    return Diagnostic("E0722", f"`translate` needs next-token logits (B, T, vocab) from its model, found {found}",
                      Label(span, problem),
                      help="its first output must score every token of the vocabulary at each decoder position, "
                           "as a final `linear(vocab)` does")


def masked_lm_unfit_encoder(span: Span, problem: str) -> Diagnostic:
    """`show masked_lm(...)`: the encoder is not applied to the ids and token types of `data bert(task="pretrain")`."""
    return Diagnostic("E0723", f"`masked_lm` cannot measure with this encoder: {problem}", Label(span, problem),
                      help='apply the encoder to the fields of `data bert(task="pretrain")` directly: '
                           '`hidden, pooled = (input_ids, token_type_ids) -> bert`')


def masked_lm_unfit_heads(span: Span, problem: str) -> Diagnostic:
    """`show masked_lm(..., heads=...)`: `heads` is not a model that turns the encoder's outputs into
    MLM logits (B, T, vocab) and NSP logits (B, 2)."""
    return Diagnostic("E0724", f"`masked_lm` needs pre-training heads that give MLM logits (B, T, vocab) and NSP "
                               f"logits (B, 2): {problem}", Label(span, problem),
                      help="name with `heads=` the model applied to the encoder's two outputs: "
                           "`mlm_logits, nsp_logits = (hidden, pooled) -> heads`")


def ensemble_unfit(span: Span, what: str, problem: str) -> Diagnostic:
    """An ensemble setting on a definition whose predictions cannot be averaged (runtime/train/ensembles.py)."""
    return Diagnostic("E0725", f"{what} needs one classifier: {problem}", Label(span, "averages class predictions"),
                      help="ensembles average the softmax of one model's class logits, "
                           "`logits = image -> net` compared with `label` by `cross_entropy`")


def ensemble_conflict(span: Span, what: str, problem: str, other: tuple[str, Span] | None) -> Diagnostic:
    return Diagnostic("E0726", f"{what} cannot be used here: {problem}", Label(span, problem),
                      (Label(other[1], f"{other[0]} given here"),) if other else ())


def unroll_no_rival(span: Span, step: str, others: Sequence[str]) -> Diagnostic:
    return Diagnostic("E0717", f"step `{step}` unrolls no other step: no other step trains a model its loss reads",
                      Label(span, "nothing to unroll"),
                      notes=(f"the other steps: {', '.join(f'`{o}`' for o in others)}" if others
                             else "the definition has no other step",),
                      help="`unroll=k` (unrolled GAN) computes a generator's loss against the discriminator after k "
                           "steps of the discriminator's own step; give it to the step whose loss reads the "
                           "discriminator, and keep a `step` that trains the discriminator")


def unroll_twice(span: Span, step: str, first: Span, first_step: str) -> Diagnostic:
    return Diagnostic("E0718", f"steps `{first_step}` and `{step}` both unroll", Label(span, "unrolls again"),
                      (Label(first, f"`{first_step}` unrolls here"),),
                      help="unroll one player only (the generator); the unrolled steps run as they are written")


# --- network parameters given by the caller (ParamError texts: usage errors, no code) --

def unknown_network_param(network: str, name: str, accepted: Sequence[str]) -> str:
    hint = did_you_mean(name, accepted)
    takes = ", ".join(accepted) or "no parameters"
    return f"`{network}` has no parameter `{name}` (it takes: {takes}){'; ' + hint if hint else ''}"


def bad_param_value(name: str, kind: str) -> str:
    return (f"the value of `{name}` is a {kind}; a network parameter is a number, a bool, a string, none "
            "or a list of those")


def param_value_syntax(item: str) -> str:
    return (f"--param expects NAME=VALUE with VALUE a number, true, false, none, a string in double quotes "
            f"or a list of those ([6, 12, 24, 16]), got `{item}`")


# --- sizes of symbolic dims (SizeError texts: usage errors, no code) ------------------

def unbound_dims(network: str, names: list[str]) -> str:
    return f"symbolic dim(s) {', '.join(names)} of `{network}` have no size; pass e.g. --dim {names[0]}=128"


def unknown_dims(network: str, names: list[str]) -> str:
    return f"`{network}` has no input dim {', '.join(names)}"


def unnamed_input_shape() -> str:
    return "with several --input-shape flags, name each input: --input-shape x=1,3,224,224"


def unknown_input(network: str, name: str, inputs: list[str]) -> str:
    return f"`{network}` has no input `{name}`; inputs: {', '.join(inputs)}"


def input_rank_mismatch(name: str, declared: str, rank: int, given: int) -> str:
    return f"input `{name}` is declared {declared} ({rank} dims), got {given} sizes"


def input_size_mismatch(name: str, declared: str, size: int, dim: str) -> str:
    return f"input `{name}` is declared {declared}; size {size} does not match `{dim}`"


def computed_dim(name: str, dim: str) -> str:
    return f"cannot bind the computed dim `{dim}` of `{name}`; use --dim"


def conflicting_sizes(dim: str, first: int, second: int) -> str:
    return f"dim `{dim}` is bound to both {first} and {second}"


# --- key maps by name (`--weights-from`: usage errors, no code) ----------------------------

def unknown_keymap(name: str, known: list[str]) -> str:
    return (f"no key map `{name}`: --weights-from takes {', '.join(f'`{k}`' for k in known)} "
            "or the path of a key map (`*.toml`)")


def no_keymap_for(name: str, network: str, maps: Mapping[str, Sequence[str]]) -> str:
    fits = "; ".join(f"`{m}` is for {', '.join(f'`{n}`' for n in nets) or 'any network'}" for m, nets in maps.items())
    return f"no `{name}` key map is for `{network}` ({fits}): name one of them, or pass a key map's path"


# --- key map files (E0108's reasons) --------------------------------------------------------

def keymap_field_type(field: str, expected: str) -> str:
    return f"`{field}` must be {expected}"


def keymap_missing_field(table: str, field: str) -> str:
    return f"a {table} rule needs `{field}`"


def keymap_split_targets(pattern: str, split: int | None, targets: int) -> str:
    if split is None:
        return f"the rule for `{pattern}` has {targets} names in `to`: several names need `split`, the dim to cut"
    return f"the rule for `{pattern}` splits dim {split}: `to` must list a name for each part (two or more)"


def keymap_unknown_capture(target: str, capture: str, pattern: str) -> str:
    return f"`{target}` uses `{capture}`, which `{pattern}` does not capture"


def keymap_bad_template(target: str) -> str:
    return f"`{target}` has a `{{` or `}}` that is no capture (`{{1}}`, `{{name}}`, `{{1+1}}`)"


def keymap_bad_pattern(pattern: str, problem: str) -> str:
    return f"bad pattern `{pattern}`: {problem}"


def keymap_unknown_field(field: str, where: str, known: Sequence[str]) -> str:
    return f"unknown field `{field}` in {where} (known: {', '.join(f'`{k}`' for k in known)})"
