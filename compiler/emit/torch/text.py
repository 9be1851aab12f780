"""Text-level pieces of the PyTorch emitter: the class record, line buffers, name and size
helpers, structural tests on defs, clean-ups of generated lines, and weight-init functions."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ... import messages
from ...errors import EmitError
from ...ops import OPS
from ...syntax import ast
from .pysource import py_value, simplify


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


@dataclass
class Lines:
    lines: list[str] = field(default_factory=list)
    level: int = 0

    def add(self, text: str) -> None:
        self.lines.append("    " * self.level + text)


def emit_error(span, text: str) -> EmitError:
    return EmitError(messages.emit_unsupported(span, text))




def substitute(expr: str | None, binding: dict[str, str]) -> str | None:
    """`expr` with every name replaced by its binding; None if a name has none."""
    if expr is None:
        return None
    missing = False

    def repl(m: re.Match) -> str:
        nonlocal missing
        name = m.group(0)
        if name in binding:
            value = binding[name]
            whole = m.start() == 0 and m.end() == len(expr)
            return value if whole or re.fullmatch(r"[\w.]+", value) else f"({value})"
        if name not in ("math", "int", "min", "max", "len", "sum", "abs"):
            missing = True
        return name

    out = re.sub(r"(?<![.\w])[A-Za-z_]\w*", repl, expr)
    return None if missing or "self." in expr else simplify(out)


def tracked_dim(d: int, rank: int) -> bool:
    """The dims ops read sizes from: channels (1) and, for (B, F) and (B, T, F), features (last)."""
    return d == 1 or (d == rank - 1 and rank in (2, 3))


def drop_unused(lines: list[str], names: set[str]) -> list[str]:
    """Remove `name = ...` lines whose name no other line reads (repeats until nothing changes)."""
    while True:
        keep = []
        for i, line in enumerate(lines):
            m = re.match(r"\s*(\w+) = ", line)
            if m and m.group(1) in names:
                rest = lines[:i] + lines[i + 1:]
                reads = [ln for ln in rest if re.search(rf"\b{m.group(1)}\b", ln.split(" = ", 1)[-1] if re.match(rf"\s*{m.group(1)} = ", ln) else ln)]
                if not reads:
                    continue
            keep.append(line)
        if len(keep) == len(lines):
            return keep
        lines = keep


def prune(lines: list[str]) -> list[str]:
    """Drop `else:` branches that hold only `pass` (the branch had work in `forward` only)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        empty = i + 1 < len(lines) and lines[i + 1].strip() == "pass" and (
            i + 2 >= len(lines) or indent(lines[i + 2]) <= indent(line))
        if line.strip() == "else:" and empty:
            i += 2
            continue
        if line.strip().startswith("if ") and empty and i + 2 < len(lines) and lines[i + 2].strip() == "else:" \
                and indent(lines[i + 2]) == indent(line):
            cond = line.strip()[3:-1]
            out.append(" " * indent(line) + f"if not ({cond}):")
            i += 3
            continue
        if line.strip().startswith("if ") and empty and not (
                i + 2 < len(lines) and lines[i + 2].strip().startswith(("else", "elif"))
                and indent(lines[i + 2]) == indent(line)):
            i += 2
            continue
        out.append(line)
        i += 1
    return out


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


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


def rebound(body: tuple[ast.Stmt, ...]) -> set[str]:
    out: set[str] = set()
    for s in body:
        if isinstance(s, ast.Bind):
            out |= set(s.names)
        elif isinstance(s, ast.Output) and s.chain is not None:
            out.add(s.name)
        elif isinstance(s, ast.For):
            out |= rebound(s.body)
        elif isinstance(s, ast.If):
            out |= rebound(s.then) | rebound(s.orelse)
    return out


def is_sequential(d: ast.Def) -> bool:
    """A block that is one unlabeled chain from its single input to its single output."""
    inputs = [s for s in d.body if isinstance(s, ast.Input)]
    if len(inputs) != 1:
        return False
    var = {inputs[0].name}
    outputs: list[str] = []

    def ok(body) -> bool:
        for s in body:
            if isinstance(s, (ast.Input, ast.Let, ast.Assert)):
                if isinstance(s, ast.Let) and isinstance(s.value, ast.Call):
                    return False
                continue
            if isinstance(s, ast.For):
                if not ok(s.body):
                    return False
            elif isinstance(s, ast.If):
                if not (ok(s.then) and ok(s.orelse)):
                    return False
            elif isinstance(s, (ast.Bind, ast.Output)):
                chain = s.chain
                names = s.names if isinstance(s, ast.Bind) else (s.name,)
                if chain is None:
                    if s.name not in var:
                        return False
                    outputs.append(s.name)
                    continue
                if len(names) != 1 or len(chain.sources) != 1 or chain.sources[0].id not in var:
                    return False
                if any(st.label or (st.callee[0] not in OPS and len(st.callee) == 1 and st.args is None
                                    and not is_def_name(st)) for st in chain.stages):
                    return False
                if any(st.callee[0] in OPS and OPS[st.callee[0]].inputs[0] > 1 for st in chain.stages):
                    return False
                var.add(names[0])
                if isinstance(s, ast.Output):
                    outputs.append(s.name)
        return True

    return ok(d.body) and len(outputs) == 1


def is_def_name(stage: ast.Stage) -> bool:
    return stage.callee[0][:1].isupper()


def init_normal(name: str, options: dict[str, Any]) -> list[str]:
    mean, std = options.get("mean", 0.0), options.get("std", 0.02)
    return [
        f"def {name}(module: nn.Module) -> None:",
        f'    """@init("normal", std={std}): weights ~ N({mean}, {std}), norm scales ~ N(1, {std}), biases 0."""',
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
