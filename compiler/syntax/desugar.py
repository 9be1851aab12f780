"""A `train` definition's steps as networks: the AST the rest of the front end already checks.

Each step becomes a synthetic `network` whose body is, in order: a `let` per model (a layer
value, so that every use of a model shares its weights, under `<model>.`), the statements the
definition has outside its steps, and the step's own statements. Name resolution, expansion and
shape inference then see an ordinary network, and every diagnostic points at the user's text.
A definition without `step` blocks has one step, `main`, whose network takes the definition's
name; with steps, step `d` of `GAN` is the network `GAN_d`.
"""
from __future__ import annotations

from . import ast

MAIN_STEP = "main"


def step_network_name(train: ast.Train, step: ast.Step | None) -> str:
    return train.name if step is None else f"{train.name}_{step.name}"


def step_defs(train: ast.Train) -> tuple[tuple[ast.Step | None, ast.Def], ...]:
    """(step, its network) for each step; step None is the implicit `main` step."""
    lets = tuple(_model_let(m) for m in train.models)
    steps: tuple[ast.Step | None, ...] = train.steps or (None,)
    out = []
    for step in steps:
        body = lets + train.body + (step.body if step is not None else ())
        span, name_span = (step.span, step.name_span) if step is not None else (train.span, train.name_span)
        out.append((step, ast.Def("network", step_network_name(train, step), (), body, (), span, name_span)))
    return tuple(out)


def _model_let(m: ast.Model) -> ast.Let:
    func: ast.Expr = ast.Name(m.callee[0], m.callee_span)
    for part in m.callee[1:]:
        func = ast.Attr(func, part, m.callee_span)
    return ast.Let(m.name, ast.Call(func, m.args, m.span), m.span)
