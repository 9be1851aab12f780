"""Every user-facing message text, in one place (as mypy's messages.py).

Each function returns a `Diagnostic`; codes are grouped by phase:
E00xx syntax, E01xx files and imports, E02xx names and arguments,
E03xx expansion, E04xx shapes and weights, E05xx evaluation.
"""
from __future__ import annotations

from typing import Iterable

from .diagnostics import Diagnostic, Label, did_you_mean
from .source import Span

_PRETTY_TOKENS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string", "$END": "end of file",
"COMP_OP": "a comparison", "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*`, `/`, `//` or `%`",
}


def _pretty(tokens: Iterable[str]) -> str:
    names = []
    for t in tokens:
        names.append(_PRETTY_TOKENS.get(t, f"`{t}`"))
    names = sorted(set(names))
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


# --- E00xx syntax -------------------------------------------------------------------------

def unexpected_token(span: Span, found: str, expected: list[str]) -> Diagnostic:
    return Diagnostic("E0001", f"syntax error: unexpected `{found}`", Label(span, "unexpected here"),
                      help=f"expected one of: {_pretty(expected)}")


def unexpected_char(span: Span, found: str, expected: list[str]) -> Diagnostic:
    help_text = f"expected one of: {_pretty(expected)}" if expected else None
    return Diagnostic("E0002", f"syntax error: unexpected character `{found}`", Label(span, "not valid here"),
                      help=help_text)


def unexpected_eof(span: Span, expected: list[str]) -> Diagnostic:
    return Diagnostic("E0003", "syntax error: unexpected end of file", Label(span, "file ends here"),
                      help=f"expected one of: {_pretty(expected)}")


# --- E01xx files and imports ----------------------------------------------------------

def cannot_read(span: Span, path: str, reason: str, imported: bool = True) -> Diagnostic:
    return Diagnostic("E0101", f"cannot read `{path}`: {reason}", Label(span, "imported here" if imported else ""))


def import_not_found(span: Span, path: str, searched: list[str]) -> Diagnostic:
    return Diagnostic("E0101", f"cannot find imported file `{path}`", Label(span, "imported here"),
                      notes=tuple(f"looked in `{s}`" for s in searched))


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


# --- E02xx names and arguments --------------------------------------------------------

def unknown_callee(span: Span, name: str, candidates: Iterable[str]) -> Diagnostic:
    return Diagnostic("E0201", f"unknown op `{name}`", Label(span, "not an op, block, network or layer"),
                      help=did_you_mean(name, candidates))


def undefined_name(span: Span, name: str, candidates: Iterable[str], what: str = "name") -> Diagnostic:
    return Diagnostic("E0202", f"undefined {what} `{name}`", Label(span, "not defined here"),
                      help=did_you_mean(name, candidates))


def used_before_definition(span: Span, name: str, later: Span) -> Diagnostic:
    return Diagnostic("E0202", f"`{name}` is used before it is defined", Label(span, "used here"),
                      (Label(later, "defined later here"),),
                      help="bindings run top to bottom; move the definition above its use")


def unknown_argument(span: Span, callee: str, name: str, accepted: list[str]) -> Diagnostic:
    hint = did_you_mean(name, accepted)
    return Diagnostic("E0203", f"`{callee}` has no parameter `{name}`", Label(span, "unknown parameter"),
                      notes=(f"`{callee}` takes: {', '.join(accepted) or 'no parameters'}",), help=hint)


def too_many_arguments(span: Span, callee: str, given: int, accepted: int) -> Diagnostic:
    return Diagnostic("E0203", f"`{callee}` takes at most {accepted} positional argument(s), {given} given",
                      Label(span, "extra argument"))


def missing_argument(span: Span, callee: str, name: str) -> Diagnostic:
    return Diagnostic("E0203", f"`{callee}` is missing required argument `{name}`",
                      Label(span, f"`{name}` not given"))


def duplicate_argument(span: Span, callee: str, name: str) -> Diagnostic:
    return Diagnostic("E0203", f"argument `{name}` of `{callee}` is given twice", Label(span, "given again here"))


def bad_argument(span: Span, callee: str, name: str, problem: str) -> Diagnostic:
    return Diagnostic("E0203", f"invalid argument `{name}` for `{callee}`: {problem}", Label(span, problem))


def wrong_input_count(span: Span, callee: str, expected: str, given: int) -> Diagnostic:
    return Diagnostic("E0204", f"`{callee}` takes {expected} input tensor(s), {given} given",
                      Label(span, f"{given} tensor(s) flow in here"))


def wrong_output_count(span: Span, expected: int, given: int) -> Diagnostic:
    return Diagnostic("E0205", f"this chain produces {given} tensor(s) but {expected} name(s) are bound",
                      Label(span, f"{given} output(s)"))


def not_a_tensor(span: Span, name: str, kind: str) -> Diagnostic:
    return Diagnostic("E0206", f"`{name}` is a {kind}, not a tensor", Label(span, "a tensor is expected here"),
                      help="tensors come from `input` declarations and chain bindings")


def not_a_value(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0206", f"`{name}` is a tensor, not a compile-time value", Label(span, "used as a value"),
                      help="arguments in parentheses are compile-time values; tensors flow through `->`")


def not_callable_layer(span: Span, name: str, kind: str) -> Diagnostic:
    return Diagnostic("E0207", f"`{name}` is a {kind} and cannot be applied to a tensor", Label(span, "applied here"))


def missing_output(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0208", f"`{name}` declares no `output`", Label(span, "defined here"),
                      help="add `output NAME` for the tensor(s) it returns")


def missing_input_type(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0209", f"network input `{name}` has no type", Label(span, "needs a type"),
                      help=f"write e.g. `input {name}: f32[B, 3, 224, 224]`")


def unknown_dtype(span: Span, dtype: str, known: list[str]) -> Diagnostic:
    return Diagnostic("E0210", f"unknown dtype `{dtype}`", Label(span, "not a dtype"),
                      help=did_you_mean(dtype, known) or f"dtypes: {', '.join(known)}")


def unbound_output(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0208", f"output `{name}` is not bound to a tensor", Label(span, "never assigned"))


# --- E03xx expansion ------------------------------------------------------------------

def recursion_without_end(span: Span, name: str, depth: int, trace: list[str]) -> Diagnostic:
    return Diagnostic("E0301", f"recursion without end: `{name}` is nested {depth} levels deep",
                      Label(span, "instantiated here"),
                      notes=(f"call chain: {' -> '.join(trace)}",),
                      help="give the recursion a base case, e.g. `if depth > 0 { ... }`")


def instantiation_cycle(span: Span, name: str, trace: list[str]) -> Diagnostic:
    return Diagnostic("E0302", f"cycle: `{name}` instantiates itself with the same arguments",
                      Label(span, "instantiated here"),
                      notes=(f"cycle: {' -> '.join(trace)}",),
                      help="a block or network may only use itself with arguments that move toward a base case")


def instance_note(name: str, span: Span) -> str:
    return f"in `{name}` instantiated at {span}"


# --- E04xx shapes and weights ---------------------------------------------------------

def shape_error(span: Span, op: str, problem: str, inputs: list[tuple[Span, str]], trace: list[str]) -> Diagnostic:
    secondary = tuple(Label(s, text) for s, text in inputs)
    return Diagnostic("E0401", f"shape error in `{op}`: {problem}", Label(span, problem),
                      secondary, notes=tuple(trace))


def shared_shape_mismatch(span: Span, param: str, expected: str, got: str, first: Span, tied: bool) -> Diagnostic:
    kind = "tied" if tied else "shared"
    hint = ("a tied weight must have the same shape in both layers" if tied
            else "a shared layer must see the same input sizes every time it is applied")
    return Diagnostic("E0403", f"{kind} weight `{param}` has shape {got} here but {expected} where it was created",
                      Label(span, f"needs {got}"), (Label(first, f"created with {expected}"),), help=hint)


def unknown_layer(span: Span, name: str, candidates: Iterable[str]) -> Diagnostic:
    return Diagnostic("E0404", f"`tie` names no layer `{name}`", Label(span, "not a layer"),
                      help=did_you_mean(name, candidates))


def dtype_error(span: Span, op: str, problem: str) -> Diagnostic:
    return Diagnostic("E0402", f"dtype error in `{op}`: {problem}", Label(span, problem))


# --- E05xx evaluation -----------------------------------------------------------------

def assertion_failed(span: Span, message: str | None) -> Diagnostic:
    return Diagnostic("E0501", f"assertion failed{': ' + message if message else ''}", Label(span, "is false"))


def eval_error(span: Span, problem: str) -> Diagnostic:
    return Diagnostic("E0502", problem, Label(span, "here"))


def shadows_op(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0103", f"`{name}` is the name of a built-in op", Label(span, "cannot be redefined"),
                      help=f"rename it, e.g. `{name.capitalize()}Block`")


def duplicate_label(span: Span, label: str, scope: str) -> Diagnostic:
    return Diagnostic("E0211", f"label `{label}` names two layers in `{scope}`", Label(span, "used again here"),
                      help="labels are layer names and must be unique in a block; inside a loop leave the "
                           "stage unlabeled (it is numbered) or label a block that holds the loop")


def layer_takes_no_args(span: Span, name: str) -> Diagnostic:
    return Diagnostic("E0207", f"`{name}` is an existing layer and takes no arguments",
                      Label(span, "arguments given here"),
                      help=f"apply it as `-> {name}`; to make a new layer, call its op or block instead")


def not_a_layer(span: Span, name: str, what: str) -> Diagnostic:
    return Diagnostic("E0207", f"`{name}` is {what}, not a layer", Label(span, "applied here"))


def missing_network_param(span: Span, network: str, name: str) -> Diagnostic:
    return Diagnostic("E0212", f"network `{network}` is compiled without a value for `{name}`",
                      Label(span, "no default"),
                      help=f"give `{name}` a default in the network's parameter list")


def bad_tie(span: Span, problem: str) -> Diagnostic:
    return Diagnostic("E0404", f"invalid `tie`: {problem}", Label(span, problem))


def unknown_decorator(span: Span, name: str, known: list[str]) -> Diagnostic:
    return Diagnostic("E0213", f"unknown decorator `@{name}`", Label(span, "not a decorator"),
                      help=did_you_mean(name, known) or f"decorators: {', '.join('@' + k for k in known)}")


def bad_decorator(span: Span, name: str, problem: str) -> Diagnostic:
    return Diagnostic("E0213", f"invalid `@{name}`: {problem}", Label(span, problem))


def emit_unsupported(span: Span, what: str) -> Diagnostic:
    return Diagnostic("E0601", f"the PyTorch emitter cannot express {what}", Label(span, "here"),
                      help="the spec is valid; this is a limit of `dlc emit torch` (see README)")


def no_onnx_form(span: Span, op: str, why: str) -> Diagnostic:
    return Diagnostic("E0602", f"`{op}` has no faithful ONNX form here: {why}", Label(span, "this op"),
                      help="the ONNX export refuses rather than emit a different computation (see README)")


def no_tvm_form(span: Span, network: str, why: str) -> Diagnostic:
    return Diagnostic("E0603", f"`{network}` cannot be compiled with TVM: {why}", Label(span, "this network"),
                      help="its PyTorch and ONNX exports work; the README lists the ops TVM's importer lacks")
