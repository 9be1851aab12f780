"""Symbolic dimensions: canonical forms, and agreement with integer arithmetic."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dlc.compiler.ir.dims import Dim

H, W, B = Dim.sym("H"), Dim.sym("W"), Dim.sym("B")


def test_conv_rule_collapses_for_same_padding():
    assert (H + 2 * 1 - 3) // 1 + 1 == H
    assert (H + 2 * 2 - 5) // 1 + 1 == H


def test_floor_division_canonical_forms():
    assert (16 * H) // 2 == 8 * H
    assert (H + 2 - 3) // 2 + 1 == (H + 1) // 2  # floor((H-1)/2)+1 == floor((H+1)/2)
    assert str((H - 1) // 2 + 1) == "(H + 1)//2"
    assert (H - 1) // 2 != H // 2


def test_exact_division_and_printing():
    assert (B * H * 4).exact_div(H * 2) == 2 * B
    assert (B * H + 1).exact_div(H) is None
    assert str(3 * B * H - 2) == "3*B*H - 2"
    assert Dim.const(7).value == 7 and not H.is_const


# Expressions built twice: as a canonical Dim and as a plain integer function of the symbols.
leaves = st.one_of(
    st.sampled_from(["H", "W", "B"]).map(lambda n: (Dim.sym(n), lambda env, n=n: env[n])),
    st.integers(-5, 20).map(lambda c: (Dim.const(c), lambda env, c=c: c)),
)


def _combine(children):
    return st.one_of(
        st.tuples(children, children).map(lambda p: (p[0][0] + p[1][0], lambda env, p=p: p[0][1](env) + p[1][1](env))),
        st.tuples(children, children).map(lambda p: (p[0][0] - p[1][0], lambda env, p=p: p[0][1](env) - p[1][1](env))),
        st.tuples(children, st.integers(-3, 4)).map(lambda p: (p[0][0] * p[1], lambda env, p=p: p[0][1](env) * p[1])),
        st.tuples(children, st.integers(1, 5)).map(lambda p: (p[0][0] // p[1], lambda env, p=p: p[0][1](env) // p[1])),
    )


exprs = st.recursive(leaves, _combine, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(exprs, st.integers(1, 40), st.integers(1, 40), st.integers(1, 9))
def test_canonical_form_evaluates_like_the_expression(pair, h, w, b):
    dim, direct = pair
    env = {"H": h, "W": w, "B": b}
    assert dim.evaluate(env) == direct(env)


@settings(max_examples=100, deadline=None)
@given(exprs)
def test_equal_expressions_have_equal_forms(pair):
    dim, _ = pair
    assert dim + dim == 2 * dim
    assert dim - dim == Dim.const(0)
    assert (dim * 6) // 3 == dim * 2
