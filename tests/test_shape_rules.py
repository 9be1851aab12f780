"""Shape rules against PyTorch: for random configurations, the compiler's inferred output
shape and parameter count must equal what the PyTorch layer produces (or both must reject)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import compile_text

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _dlc(tmp_path, input_decl: str, stage: str, n_out: int = 1):
    names = ", ".join(f"o{i}" for i in range(n_out))
    text = f"network N {{\n  input {input_decl}\n  {names} = x -> {stage}\n  output {names}\n}}\n"
    result = compile_text(text, tmp_path)
    if not result.ok:
        return None, None
    g = result.graphs["N"]
    shapes = [tuple(d.value for d in g.values[v].type.shape) for _, v in g.outputs]
    params = sum(math.prod(w.shape) for w in g.weights if w.trainable)
    return shapes, params


def _torch(module: nn.Module, *inputs):
    try:
        with torch.no_grad():
            out = module(*inputs)
    except RuntimeError:
        return None, None
    outs = out if isinstance(out, tuple) else (out,)
    if any(0 in o.shape for o in outs):
        return None, None  # an empty output is a mistake dlc reports
    return [tuple(o.shape) for o in outs], sum(p.numel() for p in module.parameters())


def _agree(ours, theirs):
    assert (ours[0] is None) == (theirs[0] is None), f"dlc {ours} vs torch {theirs}"
    if ours[0] is not None:
        assert ours == theirs


def _ints(xs):
    return "[" + ", ".join(map(str, xs)) + "]"


@SETTINGS
@given(b=st.integers(1, 3), cin=st.integers(1, 8), cout=st.integers(1, 8), h=st.integers(1, 20), w=st.integers(1, 20),
       k=st.tuples(st.integers(1, 5), st.integers(1, 5)), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       p=st.tuples(st.integers(0, 2), st.integers(0, 2)), d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       bias=st.booleans())
def test_conv2d(tmp_path, b, cin, cout, h, w, k, s, p, d, bias):
    stage = f"conv2d({cout}, {_ints(k)}, stride={_ints(s)}, padding={_ints(p)}, dilation={_ints(d)}, bias={str(bias).lower()})"
    ours = _dlc(tmp_path, f"x: f32[{b}, {cin}, {h}, {w}]", stage)
    theirs = _torch(nn.Conv2d(cin, cout, k, s, p, d, bias=bias), torch.zeros(b, cin, h, w))
    _agree(ours, theirs)


@SETTINGS
@given(groups=st.integers(1, 4), mult_in=st.integers(1, 3), mult_out=st.integers(1, 3), length=st.integers(3, 30),
       k=st.integers(1, 5), same=st.booleans())
def test_conv1d_groups_and_same_padding(tmp_path, groups, mult_in, mult_out, length, k, same):
    cin, cout = groups * mult_in, groups * mult_out
    pad = '"same"' if same else "1"
    ours = _dlc(tmp_path, f"x: f32[2, {cin}, {length}]", f"conv1d({cout}, {k}, padding={pad}, groups={groups})")
    theirs = _torch(nn.Conv1d(cin, cout, k, padding="same" if same else 1, groups=groups), torch.zeros(2, cin, length))
    _agree(ours, theirs)


@SETTINGS
@given(cin=st.integers(1, 6), cout=st.integers(1, 6), h=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 3),
       p=st.integers(0, 2), op=st.integers(0, 2), d=st.integers(1, 2))
def test_conv_transpose2d(tmp_path, cin, cout, h, k, s, p, op, d):
    stage = f"conv_transpose2d({cout}, {k}, stride={s}, padding={p}, output_padding={op}, dilation={d})"
    ours = _dlc(tmp_path, f"x: f32[1, {cin}, {h}, {h + 1}]", stage)
    try:
        module = nn.ConvTranspose2d(cin, cout, k, s, p, op, dilation=d)
    except ValueError:
        module = None
    theirs = _torch(module, torch.zeros(1, cin, h, h + 1)) if module else (None, None)
    _agree(ours, theirs)


@SETTINGS
@given(kind=st.sampled_from(["max", "avg"]), h=st.integers(1, 25), k=st.integers(1, 5), s=st.integers(1, 4),
       p=st.integers(0, 2), ceil=st.booleans())
def test_pool2d_with_ceil_mode(tmp_path, kind, h, k, s, p, ceil):
    stage = f"{kind}pool2d({k}, stride={s}, padding={p}, ceil_mode={str(ceil).lower()})"
    ours = _dlc(tmp_path, f"x: f32[1, 2, {h}, {h + 3}]", stage)
    cls = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
    try:
        module = cls(k, s, p, ceil_mode=ceil)
    except ValueError:
        module = None
    theirs = _torch(module, torch.zeros(1, 2, h, h + 3)) if module else (None, None)
    _agree(ours, theirs)


@SETTINGS
@given(h=st.integers(1, 20), o=st.integers(1, 7), scale=st.integers(1, 3))
def test_adaptive_pool_and_upsample(tmp_path, h, o, scale):
    _agree(_dlc(tmp_path, f"x: f32[1, 3, {h}, {h}]", f"adaptive_avgpool2d({o})"),
           _torch(nn.AdaptiveAvgPool2d(o), torch.zeros(1, 3, h, h)))
    _agree(_dlc(tmp_path, f"x: f32[1, 3, {h}, {h}]", f"upsample({scale})"),
           _torch(nn.Upsample(scale_factor=scale), torch.zeros(1, 3, h, h)))


@SETTINGS
@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=3), fin=st.integers(1, 16), fout=st.integers(1, 16),
       bias=st.booleans())
def test_linear_on_any_rank(tmp_path, lead, fin, fout, bias):
    shape = [*lead, fin]
    ours = _dlc(tmp_path, f"x: f32{_ints(shape)}", f"linear({fout}, bias={str(bias).lower()})")
    _agree(ours, _torch(nn.Linear(fin, fout, bias=bias), torch.zeros(*shape)))


@SETTINGS
@given(hidden=st.integers(1, 12), layers=st.integers(1, 3), bidir=st.booleans(), cell=st.sampled_from(["lstm", "gru"]),
       t=st.integers(1, 6), fin=st.integers(1, 10))
def test_recurrent_layers(tmp_path, hidden, layers, bidir, cell, t, fin):
    n_out = 3 if cell == "lstm" else 2
    stage = f"{cell}({hidden}, layers={layers}, bidirectional={str(bidir).lower()}, state=true)"
    ours = _dlc(tmp_path, f"x: f32[2, {t}, {fin}]", stage, n_out)
    cls = nn.LSTM if cell == "lstm" else nn.GRU
    module = cls(fin, hidden, layers, batch_first=True, bidirectional=bidir)
    with torch.no_grad():
        out, state = module(torch.zeros(2, t, fin))
    states = state if isinstance(state, tuple) else (state,)
    theirs = ([tuple(out.shape), *(tuple(s.shape) for s in states)], sum(p.numel() for p in module.parameters()))
    _agree(ours, theirs)


@SETTINGS
@given(heads=st.integers(1, 4), per_head=st.integers(1, 6), tq=st.integers(1, 5), tk=st.integers(1, 5),
       kdim=st.integers(1, 9))
def test_multihead_attention_cross(tmp_path, heads, per_head, tq, tk, kdim):
    e = heads * per_head
    text = (f"network N {{\n input q: f32[2, {tq}, {e}]\n input kv: f32[2, {tk}, {kdim}]\n"
            f" output y = (q, kv) -> mha({heads})\n}}\n")
    result = compile_text(text, tmp_path)
    assert result.ok
    g = result.graphs["N"]
    module = nn.MultiheadAttention(e, heads, batch_first=True, kdim=kdim, vdim=kdim)
    with torch.no_grad():
        out, _ = module(torch.zeros(2, tq, e), torch.zeros(2, tk, kdim), torch.zeros(2, tk, kdim))
    assert tuple(d.value for d in g.values[g.outputs[0][1]].type.shape) == tuple(out.shape)
    assert sum(math.prod(w.shape) for w in g.weights) == sum(p.numel() for p in module.parameters())


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), data=st.data())
def test_flatten_reshape_permute(tmp_path, shape, data):
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    x = torch.zeros(*shape)
    _agree(_dlc(tmp_path, f"x: f32{_ints(shape)}", f"flatten(start={start})"), _torch(nn.Flatten(start), x))
    perm = data.draw(st.permutations(range(n)))
    ours = _dlc(tmp_path, f"x: f32{_ints(shape)}", f"permute({_ints(perm)})")
    assert ours[0] == [tuple(x.permute(*perm).shape)]
    ours = _dlc(tmp_path, f"x: f32{_ints(shape)}", f"reshape([-1, {shape[-1]}])")
    assert ours[0] == [tuple(x.reshape(-1, shape[-1]).shape)]
    dim = data.draw(st.integers(0, n - 1))
    split = data.draw(st.sampled_from([v for v in range(1, shape[dim] + 1) if shape[dim] % v == 0]))
    ours = _dlc(tmp_path, f"x: f32{_ints(shape)}", f"unflatten({dim}, [{split}, -1])")
    assert ours[0] == [tuple(x.unflatten(dim, (split, -1)).shape)]


@SETTINGS
@given(a=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3),
       b=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3))
def test_broadcasting_add(tmp_path, a, b):
    text = f"network N {{\n input x: f32{_ints(a)}\n input y: f32{_ints(b)}\n output z = (x, y) -> add\n}}\n"
    result = compile_text(text, tmp_path)
    try:
        expected = tuple((torch.zeros(*a) + torch.zeros(*b)).shape)
    except RuntimeError:
        expected = None
    if expected is None:
        assert not result.ok
    else:
        g = result.graphs["N"]
        assert tuple(d.value for d in g.values[g.outputs[0][1]].type.shape) == expected


def test_embedding_requires_integer_ids(tmp_path):
    ok = compile_text("network N {\n input t: i64[B, T=7]\n output e = t -> embedding(100, 16)\n}\n", tmp_path)
    assert ok.ok
    g = ok.graphs["N"]
    assert [str(d) for d in g.values[g.outputs[0][1]].type.shape] == ["B", "T", "16"]
    bad = compile_text("network N {\n input t: f32[B, 7]\n output e = t -> embedding(100, 16)\n}\n", tmp_path)
    assert [d.code for d in bad.diagnostics] == ["E0401"]


@pytest.mark.parametrize("h", [7, 8, 224])
def test_symbolic_conv_chain_matches_concrete(tmp_path, h):
    """A symbolic H gives a formula that, evaluated, equals PyTorch's size for each concrete H."""
    stage = "conv2d(4, 7, stride=2, padding=3) -> maxpool2d(3, stride=2, padding=1) -> conv2d(4, 3, stride=2, padding=1)"
    result = compile_text(f"network N {{\n input x: f32[B, 3, H, H]\n output y = x -> {stage}\n}}\n", tmp_path)
    g = result.graphs["N"]
    sym = g.values[g.outputs[0][1]].type.shape
    net = nn.Sequential(nn.Conv2d(3, 4, 7, 2, 3), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1))
    out = net(torch.zeros(2, 3, h, h))
    assert tuple(d.evaluate({"B": 2, "H": h}) for d in sym) == tuple(out.shape)
