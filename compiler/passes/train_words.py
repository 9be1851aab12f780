"""The train pass's checks of the word shows (part of compiler/passes/train.py): `neighbours` reads an
embedding table of the model, not a call, and the table's rows must be the data's vocabulary."""
from __future__ import annotations

from typing import Any

from .. import messages
from ..diagnostics import Diagnostics
from ..ir.graph import Node
from ..ir.train import DataPlan, Option, ShowPlan, StepPlan, options
from ..syntax import ast

VOCABULARY_DATA = ("skipgram",)  # data sets whose ids are the words of a vocabulary (meta "words")


def word_list(v: Any) -> tuple[str, ...]:
    """`words=["file", "list"]`: a non-empty list of words, each given once."""
    if not isinstance(v, tuple) or not v or not all(isinstance(w, str) and w for w in v):
        raise ValueError('needs a list of words, like ["file", "list"]')
    if len(set(v)) != len(v):
        raise ValueError(f"lists `{next(w for w in v if v.count(w) > 1)}` twice")
    return v


def check_neighbours(diags: Diagnostics, s: ast.Setting, steps: list[StepPlan], target: tuple[str, ...],
                     opts: tuple[Option, ...], data: DataPlan | None, names: set[str]) -> ShowPlan | None:
    """The plan of `show neighbours(model.table, words=[...], k=5)`, or None after a diagnostic: the
    part is an `embedding` the objective applies, with one row per word of the data's vocabulary.
    `names`: the shows' names so far (this one is added)."""
    part, span = ".".join(target), s.args[0].span

    def unfit(problem: str, label: str, help: str, made: Node | None = None) -> None:
        diags.add(messages.neighbours_unfit(span, part, problem, label, help, made.span if made else None))

    tables = [n for st in steps for n in st.graph.nodes if n.weight_scope.startswith(f"{target[0]}.")
              and n.op == "embedding"]
    known = ", ".join(dict.fromkeys(f"`{n.weight_scope}`" for n in tables)) or "none"
    node = next((n for st in steps for n in st.graph.nodes if n.weight_scope == part and n.path == part), None)
    if node is None:
        blocks = [c for st in steps for c in st.graph.calls if c.frame.path == part]
        what = "it is the whole model, not one of its embedding tables" if len(target) == 1 else \
            f"it is a `{blocks[0].frame.block}`, not an embedding table" if blocks else \
            "the objective runs no layer of that name"
        unfit(what, "not an embedding table", f"the embedding tables of `{target[0]}`: {known}")
        return None
    if node.op != "embedding":
        unfit(f"it is a `{node.op}` layer, not an embedding table", f"a `{node.op}` layer",
              f"the embedding tables of `{target[0]}`: {known}", node)
        return None
    rows = dict(node.attrs)["num"]
    if data is None:  # the data's own mistake is reported already
        return None
    if data.kind not in VOCABULARY_DATA:
        unfit(f"data `{data.kind}` has no vocabulary of words", "the data has no words",
              f"train on word ids and their vocabulary: `data skipgram(vocab={rows})`")
        return None
    vocab = options(data.options)["vocab"]
    if rows != vocab:
        unfit(f"it has {rows} rows, but data `{data.kind}` has a vocabulary of {vocab} words",
              f"{rows} rows, {vocab} words", f"give the table one row per word ({vocab} rows), or the data "
              f"`vocab={rows}`", node)
        return None
    k = options(opts)["k"]
    if k >= vocab:
        unfit(f"k={k} neighbours, but a word of a vocabulary of {vocab} has {vocab - 1} others",
              f"{vocab - 1} others at most", f"ask for k={vocab - 1} or fewer")
        return None
    name = s.label or s.name
    if name in names:
        diags.add(messages.show_unfit(s.span, s.name, f"a picture named `{name}` is shown already; "
                                      f"name this one: `show other = {s.name}(...)`"))
        return None
    names.add(name)
    return ShowPlan(s.name, name, target[0], ".".join(target[1:]), (), opts, (), rows, s.span)
