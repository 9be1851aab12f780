"""Render the op reference (docs/ops.md) from the op table, so the docs cannot drift."""
from __future__ import annotations

from .ops import OPS
from .ops.table import REQUIRED

_CATEGORIES = ("convolution", "pooling", "normalization", "regularization", "activation", "dense", "shape",
               "combine", "indexing", "attention", "sequence", "recurrent", "generative")


def ops_markdown() -> str:
    lines = ["# Op reference", "",
             "Generated from the op table (`python -m dlc.compiler.docs > docs/ops.md`); a test keeps it current.",
             "Shapes use `B` for batch; `in`, `out` are feature counts. Every op validates its arguments and",
             "reports a located error when a shape rule does not hold.", ""]
    for category in _CATEGORIES:
        ops = sorted((op for op in OPS.values() if op.category == category), key=lambda op: op.name)
        lines += [f"## {category.capitalize()}", "", "| op | parameters | inputs | shape rule | description |",
                  "|---|---|---|---|---|"]
        for op in ops:
            lines.append(f"| `{op.name}` | {_params(op)} | {_arity(op.inputs)} | `{op.rule}` | {op.doc} |")
        lines.append("")
    return "\n".join(lines)


def _params(op) -> str:
    parts = []
    for p in op.params:
        default = "" if p.default is REQUIRED else f" = {_show(p.default)}"
        parts.append(f"`{p.name}: {p.type_name}{default}`".replace("|", "\\|"))
    return ", ".join(parts) or "—"


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def _arity(inputs: tuple[int, int]) -> str:
    lo, hi = inputs
    return str(lo) if lo == hi else f"{lo}+" if hi == -1 else f"{lo}–{hi}"


if __name__ == "__main__":
    print(ops_markdown())
