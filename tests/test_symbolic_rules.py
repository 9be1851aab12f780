"""The op table's shape rules on static sizes: what the PyTorch emitter prints is the rule itself.

The emitter evaluates each op's own rule on sizes in a class's terms (`=cout`, `=in_channels`;
see compiler/emit/torch/sizes.py) instead of keeping a second rule per op. These tests check
that such evaluation agrees with the concrete rule wherever it succeeds, that it succeeds for
the sizes classes need (channels, features), and that runtime sizes (`B`, `T`) are still
checked as strictly as before.
"""
from __future__ import annotations

import pytest

from dlc.compiler.emit.torch.sizes import infer_sizes, placeholder_types
from dlc.compiler.ir.dims import Dim
from dlc.compiler.ir.types import TensorType
from dlc.compiler.ops import OPS, ShapeError
from test_torch_ops import CASES, full_attrs


def _sym(name: str) -> Dim:
    return Dim.sym(f"={name}")


def _symbolic(attrs: dict) -> tuple[dict, dict[str, int]]:
    """Every integer (and integer tuple) attribute as a static symbol, with the values they stand for."""
    out, env = {}, {}
    for name, v in attrs.items():
        if isinstance(v, int) and not isinstance(v, bool):
            out[name], env[f"={name}"] = _sym(name), v
        elif isinstance(v, tuple) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            out[name] = tuple(_sym(f"{name}{k}") for k in range(len(v)))
            env.update({f"={name}{k}": x for k, x in enumerate(v)})
        else:
            out[name] = v
    return out, env


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("what", ["inputs", "attrs", "both"])
def test_a_rule_on_static_sizes_agrees_with_the_rule_on_values(case, what):
    """Where the rule can say something on static symbols, substituting the values gives exactly
    its answer on the values; where it cannot, it says nothing (None), never something else."""
    op, attrs = OPS[case.op], full_attrs(case)
    concrete = op.infer(attrs, [TensorType(dtype, tuple(map(Dim.const, s)))
                                for dtype, s in zip(case.dtypes(), case.shapes, strict=True)])
    env: dict[str, int] = {}
    sym_attrs = attrs
    if what in ("attrs", "both"):
        sym_attrs, env = _symbolic(attrs)
    shapes = []
    for i, s in enumerate(case.shapes):
        if what == "attrs":
            shapes.append([Dim.const(d) for d in s])
            continue
        # a size that is 1 stays 1, as the emitter keeps it (rules must see it to broadcast)
        shapes.append([Dim.const(1) if size == 1 else _sym(f"x{i}_{d}") for d, size in enumerate(s)])
        env.update({f"=x{i}_{d}": size for d, size in enumerate(s) if size != 1})
    sizes = infer_sizes(op, sym_attrs, placeholder_types(case.dtypes(), shapes), len(concrete))
    assert len(sizes) == len(concrete)
    for got, want in zip(sizes, concrete, strict=True):
        if got is None:
            continue
        assert len(got) == want.rank
        for d, w in zip(got, want.shape, strict=True):
            if d is not None:
                assert d.evaluate(env) == w.value, (case, what, d)


def _sizes(op: str, attrs: dict, *shapes, dtype: str = "f32") -> list:
    full = {p.name: None if p.default is None else p.check(p.default) for p in OPS[op].params if p.name not in attrs}
    full.update(attrs)
    n_out = OPS[op].outputs(full, len(shapes))
    dims = [[Dim.of(x) if x is not None else None for x in s] for s in shapes]
    return infer_sizes(OPS[op], full, placeholder_types([dtype] * len(shapes), dims), n_out)


B, T, H, W = (Dim.sym(s) for s in "BTHW")
c, k, d, n = (_sym(s) for s in "ckdn")


def test_the_sizes_a_class_needs_follow_from_its_parameters():
    conv = {"out": n, "kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "groups": 1,
            "bias": True}
    assert _sizes("conv2d", conv, (B, c, H, W)) == [[B, n, (H - 1) // 2 + 1, (W - 1) // 2 + 1]]
    assert _sizes("conv2d", {**conv, "stride": (1, 1), "padding": "same"}, (B, c, H, W)) == [[B, n, H, W]]
    stride = _sym("stride")
    assert _sizes("conv2d", {**conv, "stride": (stride, stride)}, (B, c, H, W)) == [
        [B, n, (H - 1) // stride + 1, (W - 1) // stride + 1]]
    assert _sizes("linear", {"out": n}, (B, T, d)) == [[B, T, n]]
    assert _sizes("embedding", {"num": 100, "dim": d}, (B, T), dtype="i64") == [[B, T, d]]
    assert _sizes("concat", {"dim": 1}, (B, c - 1, 8), (B, 2 * k, 8)) == [[B, c + 2 * k - 1, Dim.const(8)]]
    assert _sizes("flatten", {}, (B, c, 4, 4)) == [[B, 16 * c]]
    assert _sizes("flatten", {}, (B, 16, 5, 5)) == [[B, Dim.const(400)]]
    assert _sizes("lstm", {"hidden": n, "bidirectional": True}, (B, T, d)) == [[B, T, 2 * n]]
    assert _sizes("mha", {"heads": 8}, (B, T, d)) == [[B, T, d]]
    assert _sizes("batchnorm2d", {}, (B, c, H, W)) == [[B, c, H, W]]
    assert _sizes("groupnorm", {"groups": 4}, (B, c, H, W)) == [[B, c, H, W]]
    assert _sizes("chunk", {"chunks": 2, "dim": 1}, (B, c)) == [[B, c // 2]] * 2
    assert _sizes("add", {}, (B, c, H), (B, k, H)) == [[B, c, H]]  # equal once built: the first one
    pool = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "ceil_mode": False}
    assert _sizes("maxpool2d", pool, (B, c, 112, 112)) == [[B, c, Dim.const(56), Dim.const(56)]]
    assert _sizes("upsample", {"scale": 2.0}, (B, 3, H, 8)) == [[B, Dim.const(3), 2 * H, Dim.const(16)]]


def test_what_a_rule_cannot_see_is_unknown_not_guessed():
    # ceil_mode on a size the module sees: PyTorch's correction depends on the value
    pool = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "dilation": (1, 1), "ceil_mode": True}
    assert _sizes("maxpool2d", pool, (B, c, _sym("h"), 14)) == [[B, c, None, Dim.const(8)]]
    assert _sizes("slice", {"dim": 1, "start": 0, "end": 10, "step": 1}, (B, c)) == [[B, None]]  # min(10, c)
    # an input dim nobody tracks (None) makes what depends on it unknown, and nothing else
    assert _sizes("conv2d", {"out": n, "kernel": (3, 3)}, (B, c, None, W)) == [[B, n, None, W - 2]]
    assert _sizes("flatten", {}, (B, c, None)) == [[B, None]]


def test_runtime_sizes_are_checked_as_strictly_as_before():
    x = TensorType("f32", (B, Dim.sym("C"), H, W))
    conv = {"out": 8, "kernel": (3, 3), "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1,
            "bias": True}
    with pytest.raises(ShapeError, match="fixed size"):
        OPS["conv2d"].infer(conv, [x])
    with pytest.raises(ShapeError, match="differs"):
        OPS["add"].infer({}, [TensorType("f32", (B, T)), TensorType("f32", (B, Dim.sym("S")))])
    with pytest.raises(ShapeError, match="groups=3"):
        OPS["conv2d"].infer({**conv, "groups": 3}, [TensorType("f32", (B, Dim.const(4), H, W))])
