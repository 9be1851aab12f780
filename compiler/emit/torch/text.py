"""Pieces of the PyTorch emitter that are not the class writer: the class record, names of
submodules and exposed sizes, structural tests on defs (visitors), and weight-init functions."""
from __future__ import annotations

import ast as py
from dataclasses import dataclass, field
from typing import Any, Callable

from ... import messages
from ...errors import EmitError
from ...ops import OPS
from ...ops.internal import INITIALIZERS
from ...syntax import ast
from ...syntax.visitor import StmtVisitor, StmtWalker
from .pysource import NameMap, py_expr, py_value, py_value_tuple


@dataclass
class PyClass:
    name: str
    base: str
    doc: str
    init_params: list[str]
    init_lines: list[str]
    forward_params: list[str]
    forward_lines: list[str]
    returns: str
    helpers: set[str] = field(default_factory=set)


TORCH_DTYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "bf16": "bfloat16", "i64": "int64",
                "i32": "int32", "u8": "uint8", "bool": "bool"}


def emit_error(span, text: str) -> EmitError:
    return EmitError(messages.emit_unsupported(span, text))




def tracked_dim(d: int, rank: int) -> bool:
    """The dims ops read sizes from: channels (1) and, for (B, F) and (B, T, F), features (last)."""
    return d == 1 or (d == rank - 1 and rank in (2, 3))


def attr_ref(attr: str) -> str:
    if attr.startswith("="):
        return f"getattr(self, {attr[1:]})"
    return f"self.{attr}" if attr.isidentifier() else f"getattr(self, {py_value(attr)})"


def exposed_attr(out_index: int, dim: int, rank: int) -> str:
    suffix = "" if out_index == 0 else f"_{out_index}"
    return f"out_{dim_word(dim, rank)}{suffix}"


def dim_word(d: int, rank: int) -> str:
    if d == rank - 1 and rank in (2, 3):
        return "features"
    return "channels" if d == 1 else f"size{d}"


def callee_name(e: ast.Expr) -> str | None:
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
        return e.func.id
    return None


def callee_qualname(e: ast.Expr) -> tuple[str, ...] | None:
    """The callee of a layer value's expression: `Tower(64)` -> ("Tower",), `lib.Net()` -> ("lib", "Net")."""
    if not isinstance(e, ast.Call):
        return None
    parts: list[str] = []
    func = e.func
    while isinstance(func, ast.Attr):
        parts.insert(0, func.name)
        func = func.obj
    return (func.id, *parts) if isinstance(func, ast.Name) else None


def makes_layer(e: ast.Expr, is_layer: Callable[[str], bool]) -> bool:
    """Whether a branch of a conditional expression calls an op or a block (a layer value)."""
    if isinstance(e, ast.IfExpr):
        return makes_layer(e.then, is_layer) or makes_layer(e.orelse, is_layer)
    callee = callee_name(e)
    return callee is not None and is_layer(callee)


def label_source(stage: ast.Stage, names: NameMap) -> str:
    """A numbered label as a Python f-string: `denselayer{i + 1}` -> f"denselayer{i + 1}", spelled
    as Python's `ast.unparse` spells it (code.py reads attribute chains back that way)."""
    pieces = [p if isinstance(p, str) else "{" + py_expr(p, names) + "}" for p in stage.label_parts]
    quote = "'" if any('"' in p for p in pieces) else '"'
    return py.unparse(py.parse(f"f{quote}{''.join(pieces)}{quote}", mode="eval"))


def parameter_source(s: ast.ParamTensor, names: NameMap) -> str:
    """A parameter tensor's first value, as its initializer makes it (ops/internal.py):
    `torch.zeros(1, 1, d)`, `torch.empty(1, seq, d).normal_(std=0.02)`, `torch.full((d,), 1e-06)`."""
    dims = [d.name if isinstance(d, ast.DimExample) else py_expr(d, names) for d in s.type.dims]
    dtype = "" if (s.type.dtype or "f32") == "f32" else f", dtype=torch.{TORCH_DTYPES[s.type.dtype]}"
    shape, e = ", ".join(dims), s.init
    name = (e.func if isinstance(e, ast.Call) else e).id if isinstance(e, (ast.Name, ast.Call)) else None
    if e is None or name in ("zeros", "ones"):
        return f"torch.{name or 'zeros'}({shape}{dtype})"
    if name not in INITIALIZERS:  # a number: every entry that value
        return f"torch.full({py_value_tuple(dims)}, {py_expr(e, names)}{dtype})"
    init = INITIALIZERS[name]
    given = dict(zip((p.name for p in init.params), (a.value for a in e.args if a.name is None)))
    given.update({a.name: a.value for a in e.args if a.name is not None})
    if name == "normal":
        args = [f"{k}={py_expr(given[k], names)}" for k in ("mean", "std") if k in given]
    else:  # torch's uniform_(a, b), both positional
        args = [py_expr(given[p.name], names) if p.name in given else py_value(p.default) for p in init.params]
    return f"torch.empty({shape}{dtype}).{name}_({', '.join(args)})"


class _Rebound(StmtWalker):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_bind(self, s: ast.Bind) -> None:
        self.names |= set(s.names)

    def visit_output(self, s: ast.Output) -> None:
        if s.chain is not None:
            self.names.add(s.name)


def rebound(body: tuple[ast.Stmt, ...]) -> set[str]:
    """Tensor names a body (re)binds with a chain, loops and branches included."""
    walker = _Rebound()
    walker.visit_body(body)
    return walker.names


class _SequentialCheck(StmtVisitor[bool]):
    """Whether every statement keeps the def one unlabeled single-input chain (see is_sequential)."""

    def __init__(self, first_input: str) -> None:
        self.tensors = {first_input}
        self.outputs: list[str] = []

    def all(self, body: tuple[ast.Stmt, ...]) -> bool:
        return all(self.visit(s) for s in body)

    def visit_input(self, s: ast.Input) -> bool:
        return True

    def visit_param_tensor(self, s: ast.ParamTensor) -> bool:
        return False  # an nn.Sequential holds modules only

    def visit_assert(self, s: ast.Assert) -> bool:
        return True

    def visit_let(self, s: ast.Let) -> bool:
        return not isinstance(s.value, ast.Call)  # a let-bound layer is applied by name

    def visit_for(self, s: ast.For) -> bool:
        return self.all(s.body)

    def visit_if(self, s: ast.If) -> bool:
        return self.all(s.then) and self.all(s.orelse)

    def visit_bind(self, s: ast.Bind) -> bool:
        return len(s.names) == 1 and self._chain(s.chain, s.names[0])

    def visit_output(self, s: ast.Output) -> bool:
        if s.chain is None:
            ok = s.name in self.tensors
        else:
            ok = self._chain(s.chain, s.name)
        if s.name not in self.outputs:  # `output y` in both branches of an `if` is one output
            self.outputs.append(s.name)
        return ok

    def _chain(self, chain: ast.Chain, target: str) -> bool:
        if len(chain.sources) != 1 or chain.sources[0].id not in self.tensors:
            return False
        for st in chain.stages:
            if st.label or (st.callee[0] not in OPS and len(st.callee) == 1 and st.args is None
                            and not is_def_name(st)):
                return False  # a labelled stage or an existing layer applied by name
            if st.callee[0] in OPS and OPS[st.callee[0]].inputs[0] > 1:
                return False
        self.tensors.add(target)
        return True


def is_sequential(d: ast.Def) -> bool:
    """A block that is one unlabeled chain from its single input to its single output."""
    inputs = [s for s in d.body if isinstance(s, ast.Input)]
    if len(inputs) != 1:
        return False
    check = _SequentialCheck(inputs[0].name)
    return check.all(d.body) and len(check.outputs) == 1


def is_def_name(stage: ast.Stage) -> bool:
    return stage.callee[0][:1].isupper()


def init_normal(name: str, options: dict[str, Any]) -> list[str]:
    mean, std = options.get("mean", 0.0), options.get("std", 0.02)
    return [
        f"def {name}(module: nn.Module) -> None:",
        f'    """@init("normal", std={std}): weights ~ N({mean}, {std}), biases 0; batch and group norm',
        f'    scales ~ N(1, {std}); layer norms keep ones and zeros."""',
        "    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):",
        f"        nn.init.normal_(module.weight, 1.0, {std})",
        "        nn.init.zeros_(module.bias)",
        "    elif isinstance(module, nn.LayerNorm):",
        "        return",
        "    elif isinstance(getattr(module, \"weight\", None), nn.Parameter):",
        f"        nn.init.normal_(module.weight, {mean}, {std})",
        "        if isinstance(getattr(module, \"bias\", None), nn.Parameter):",
        "            nn.init.zeros_(module.bias)",
    ]


def init_named(fn: str, arg: str):
    def method(name: str, options: dict[str, Any]) -> list[str]:
        value = options.get(arg)
        extra = f", {arg}={py_value(value)}" if value is not None else ""
        return [
            f"def {name}(module: nn.Module) -> None:",
            f'    """@init: {fn} weights for convolutions and linear layers, zero biases."""',
            "    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,",
            "                           nn.ConvTranspose3d, nn.Linear)):",
            f"        nn.init.{fn}(module.weight{extra})",
            "        if module.bias is not None:",
            "            nn.init.zeros_(module.bias)",
        ]
    return method


INIT_FUNCTIONS = {
    "normal": init_normal,
    "xavier_uniform": init_named("xavier_uniform_", "gain"),
    "xavier_normal": init_named("xavier_normal_", "gain"),
    "kaiming_uniform": init_named("kaiming_uniform_", "nonlinearity"),
    "kaiming_normal": init_named("kaiming_normal_", "nonlinearity"),
}


# --- the spec's comments as docstrings ----------------------------------------------------------

def comment_block_above(text: str, line: int) -> list[str]:
    """The full-line `#` comments directly above `line` (1-based; no blank line between), without `# `."""
    lines = text.splitlines()
    out: list[str] = []
    k = line - 2
    while k >= 0 and lines[k].lstrip().startswith("#"):
        out.append(_uncomment(lines[k]))
        k -= 1
    return out[::-1]


def header_comment(text: str) -> list[str]:
    """The comment block that opens a file, when it is not the comment of the definition below it."""
    lines = text.splitlines()
    out: list[str] = []
    for line in lines:
        if not line.lstrip().startswith("#"):
            break
        out.append(_uncomment(line))
    attached = len(out) < len(lines) and lines[len(out)].strip() != ""
    return [] if attached else out


def _uncomment(line: str) -> str:
    body = line.lstrip()[1:]
    return body[1:] if body.startswith(" ") else body


def docstring(lines: list[str], indent: str) -> str:
    """Text lines as the inside of a triple-quoted docstring at `indent` (quotes and backslashes escaped)."""
    safe = [ln.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').rstrip() for ln in lines]
    while safe and not safe[-1]:
        safe.pop()
    if len(safe) == 1:
        return safe[0]
    return "\n".join([safe[0], *(f"{indent}{ln}" if ln else "" for ln in safe[1:]), indent])
