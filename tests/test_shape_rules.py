"""Shape rules against PyTorch: for random configurations, the compiler's inferred output
shapes and parameter count must equal what the PyTorch layer produces. A case PyTorch refuses
must be refused by the op's own shape diagnostic (E0401/E0402 on the op, nothing else); a case
PyTorch runs must compile."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import compile_text

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SHAPE_CODES = ("E0401", "E0402")  # shape and dtype errors: what a shape rule reports


@dataclass(frozen=True)
class Rejected:
    """A case refused: by dlc with the op's own shape diagnostic, or by PyTorch with an error."""

    why: str


Outcome = tuple[list[tuple[int, ...]], int] | Rejected  # (output shapes, trainable parameters) or a refusal


def _dlc(tmp_path, inputs: str | list[str], stage: str, n_out: int = 1, source: str = "x") -> Outcome:
    """Compile `o0, ... = source -> stage` after the input declarations. A refusal must be a single
    E0401/E0402 whose primary span is exactly `stage`: any other error is a failure of the test."""
    decls = [inputs] if isinstance(inputs, str) else inputs
    names = ", ".join(f"o{i}" for i in range(n_out))
    binding = f"  {names} = {source} -> "
    lines = ["network N {", *(f"  input {d}" for d in decls), binding + stage, f"  output {names}", "}"]
    result = compile_text("\n".join(lines) + "\n", tmp_path)
    if result.ok:
        g = result.graphs["N"]
        shapes = [tuple(d.value for d in g.values[v].type.shape) for _, v in g.outputs]
        return shapes, sum(math.prod(w.shape) for w in g.weights if w.trainable)
    return _shape_refusal(result, stage, line=len(decls) + 2, col=len(binding) + 1)


def _shape_refusal(result, stage: str, line: int, col: int) -> Rejected:
    """The refusal of a case that does not compile: it must be one diagnostic, the op's shape (or
    dtype) error, whose primary span is exactly `stage`. Any other error fails the test."""
    errors = [d for d in result.diagnostics if d.severity == "error"]
    found = [(d.code, f"{d.primary.span.line}:{d.primary.span.col}-{d.primary.span.end_col}", d.message)
             for d in errors]
    assert len(errors) == 1 and errors[0].code in SHAPE_CODES, f"`{stage}` is refused by {found}"
    span = errors[0].primary.span
    assert (span.line, span.col, span.end_line, span.end_col) == (line, col, line, col + len(stage)), (
        f"`{stage}` (at {line}:{col}) is refused at another place: {found}")
    return Rejected(errors[0].message)


def _torch(build, *inputs) -> Outcome:
    """Build the PyTorch layer (`build()`) and run it on `inputs`; an error in either is a refusal."""
    try:
        module = build()
        with torch.no_grad():
            outs = _flat(module(*inputs))
    except (RuntimeError, ValueError) as err:
        return Rejected(f"{type(err).__name__}: {err}")
    if any(0 in o.shape for o in outs):
        return Rejected("an empty output")  # PyTorch allows it; dlc reports a zero-sized dim as a mistake
    return [tuple(o.shape) for o in outs], sum(p.numel() for p in module.parameters())


def _flat(out) -> list[torch.Tensor]:
    """A layer's outputs in dlc's order: an LSTM's `(y, (h, c))` is `y, h, c`."""
    return [t for o in out for t in _flat(o)] if isinstance(out, tuple) else [out]


class _First(nn.Module):
    """A layer that returns more than dlc's op does (attention weights), cut to its first output."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, *args):
        return self.layer(*args)[0]


class _Op(nn.Module):
    """A tensor function as a layer without weights."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _agree(ours: Outcome, theirs: Outcome):
    """PyTorch's answer is the reference: dlc refuses exactly the cases PyTorch refuses, and
    gives PyTorch's shapes and parameter count for the others."""
    if isinstance(theirs, Rejected):
        assert isinstance(ours, Rejected), f"PyTorch refuses ({theirs.why}) but dlc compiles it to {ours}"
    else:
        assert not isinstance(ours, Rejected), f"dlc refuses ({ours.why}) what PyTorch runs: {theirs}"
        assert ours == theirs, f"dlc {ours} vs PyTorch {theirs}"


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
    theirs = _torch(lambda: nn.Conv2d(cin, cout, k, s, p, d, bias=bias), torch.zeros(b, cin, h, w))
    _agree(ours, theirs)


@SETTINGS
@given(groups=st.integers(1, 4), mult_in=st.integers(1, 3), mult_out=st.integers(1, 3), length=st.integers(3, 30),
       k=st.integers(1, 5), same=st.booleans(), skew=st.sampled_from([(0, 0), (0, 0), (1, 0), (0, 1)]))
def test_conv1d_groups_and_same_padding(tmp_path, groups, mult_in, mult_out, length, k, same, skew):
    # a skew of one channel makes groups > 1 divide only one side, which PyTorch refuses
    cin, cout = groups * mult_in + skew[0], groups * mult_out + skew[1]
    pad = '"same"' if same else "1"
    ours = _dlc(tmp_path, f"x: f32[2, {cin}, {length}]", f"conv1d({cout}, {k}, padding={pad}, groups={groups})")
    theirs = _torch(lambda: nn.Conv1d(cin, cout, k, padding="same" if same else 1, groups=groups),
                    torch.zeros(2, cin, length))
    _agree(ours, theirs)


@SETTINGS
@given(cin=st.integers(1, 6), cout=st.integers(1, 6), h=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 3),
       p=st.integers(0, 2), op=st.integers(0, 2), d=st.integers(1, 2))
def test_conv_transpose2d(tmp_path, cin, cout, h, k, s, p, op, d):
    stage = f"conv_transpose2d({cout}, {k}, stride={s}, padding={p}, output_padding={op}, dilation={d})"
    ours = _dlc(tmp_path, f"x: f32[1, {cin}, {h}, {h + 1}]", stage)
    theirs = _torch(lambda: nn.ConvTranspose2d(cin, cout, k, s, p, op, dilation=d), torch.zeros(1, cin, h, h + 1))
    _agree(ours, theirs)


@SETTINGS
@given(kind=st.sampled_from(["max", "avg"]), h=st.integers(1, 25), k=st.integers(1, 5), s=st.integers(1, 4),
       p=st.integers(0, 2), ceil=st.booleans())
def test_pool2d_with_ceil_mode(tmp_path, kind, h, k, s, p, ceil):
    stage = f"{kind}pool2d({k}, stride={s}, padding={p}, ceil_mode={str(ceil).lower()})"
    ours = _dlc(tmp_path, f"x: f32[1, 2, {h}, {h + 3}]", stage)
    cls = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
    _agree(ours, _torch(lambda: cls(k, s, p, ceil_mode=ceil), torch.zeros(1, 2, h, h + 3)))


@SETTINGS
@given(h=st.integers(1, 20), o=st.integers(1, 7), scale=st.integers(1, 3))
def test_adaptive_pool_and_upsample(tmp_path, h, o, scale):
    _agree(_dlc(tmp_path, f"x: f32[1, 3, {h}, {h}]", f"adaptive_avgpool2d({o})"),
           _torch(lambda: nn.AdaptiveAvgPool2d(o), torch.zeros(1, 3, h, h)))
    _agree(_dlc(tmp_path, f"x: f32[1, 3, {h}, {h}]", f"upsample({scale})"),
           _torch(lambda: nn.Upsample(scale_factor=scale), torch.zeros(1, 3, h, h)))


@SETTINGS
@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=3), fin=st.integers(1, 16), fout=st.integers(1, 16),
       bias=st.booleans())
def test_linear_on_any_rank(tmp_path, lead, fin, fout, bias):
    shape = [*lead, fin]
    ours = _dlc(tmp_path, f"x: f32{_ints(shape)}", f"linear({fout}, bias={str(bias).lower()})")
    _agree(ours, _torch(lambda: nn.Linear(fin, fout, bias=bias), torch.zeros(*shape)))


@SETTINGS
@given(hidden=st.integers(1, 12), layers=st.integers(1, 3), bidir=st.booleans(), cell=st.sampled_from(["lstm", "gru"]),
       t=st.integers(1, 6), fin=st.integers(1, 10))
def test_recurrent_layers(tmp_path, hidden, layers, bidir, cell, t, fin):
    n_out = 3 if cell == "lstm" else 2
    stage = f"{cell}({hidden}, layers={layers}, bidirectional={str(bidir).lower()}, state=true)"
    ours = _dlc(tmp_path, f"x: f32[2, {t}, {fin}]", stage, n_out)
    cls = nn.LSTM if cell == "lstm" else nn.GRU
    _agree(ours, _torch(lambda: cls(fin, hidden, layers, batch_first=True, bidirectional=bidir), torch.zeros(2, t, fin)))


@SETTINGS
@given(heads=st.integers(1, 4), per_head=st.integers(1, 6), tq=st.integers(1, 5), tk=st.integers(1, 5),
       kdim=st.integers(1, 9))
def test_multihead_attention_cross(tmp_path, heads, per_head, tq, tk, kdim):
    e = heads * per_head
    ours = _dlc(tmp_path, [f"q: f32[2, {tq}, {e}]", f"kv: f32[2, {tk}, {kdim}]"], f"mha({heads})", source="(q, kv)")
    kv = torch.zeros(2, tk, kdim)
    theirs = _torch(lambda: _First(nn.MultiheadAttention(e, heads, batch_first=True, kdim=kdim, vdim=kdim)),
                    torch.zeros(2, tq, e), kv, kv)
    _agree(ours, theirs)


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), data=st.data())
def test_flatten_reshape_permute(tmp_path, shape, data):
    n = len(shape)
    start = data.draw(st.integers(0, n - 1))
    x = torch.zeros(*shape)
    decl = f"x: f32{_ints(shape)}"
    _agree(_dlc(tmp_path, decl, f"flatten(start={start})"), _torch(lambda: nn.Flatten(start), x))
    perm = data.draw(st.permutations(range(n)))
    assert _dlc(tmp_path, decl, f"permute({_ints(perm)})") == ([tuple(x.permute(*perm).shape)], 0)
    assert _dlc(tmp_path, decl, f"reshape([-1, {shape[-1]}])") == ([tuple(x.reshape(-1, shape[-1]).shape)], 0)
    dim = data.draw(st.integers(0, n - 1))
    split = data.draw(st.sampled_from([v for v in range(1, shape[dim] + 1) if shape[dim] % v == 0]))
    assert _dlc(tmp_path, decl, f"unflatten({dim}, [{split}, -1])") == ([tuple(x.unflatten(dim, (split, -1)).shape)], 0)


@SETTINGS
@given(a=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3),
       b=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3))
def test_broadcasting_add(tmp_path, a, b):
    ours = _dlc(tmp_path, [f"x: f32{_ints(a)}", f"y: f32{_ints(b)}"], "add", source="(x, y)")
    _agree(ours, _torch(lambda: _Op(torch.add), torch.zeros(*a), torch.zeros(*b)))


def test_embedding_requires_integer_ids(tmp_path):
    ok = compile_text("network N {\n input t: i64[B, T=7]\n output e = t -> embedding(100, 16)\n}\n", tmp_path)
    assert ok.ok
    g = ok.graphs["N"]
    assert [str(d) for d in g.values[g.outputs[0][1]].type.shape] == ["B", "T", "16"]
    ids = torch.zeros(2, 7, dtype=torch.int64)
    _agree(_dlc(tmp_path, "t: i64[2, 7]", "embedding(100, 16)", source="t"), _torch(lambda: nn.Embedding(100, 16), ids))
    # float ids: refused by the op's own rule, as PyTorch refuses them
    _agree(_dlc(tmp_path, "t: f32[2, 7]", "embedding(100, 16)", source="t"),
           _torch(lambda: nn.Embedding(100, 16), ids.float()))


@pytest.mark.parametrize(("decl", "stage"), [("x: f32[1, C, 5, 6]", "conv2d(4, 3)"),
                                             ("x: f32[1, C, 5, 6]", "conv_transpose2d(4, 3)"),
                                             ("x: f32[1, C, 5, 6]", "batchnorm2d"),
                                             ("x: f32[1, 5, C]", "linear(3)"), ("x: f32[1, 5, C]", "layernorm")])
def test_a_weight_size_cannot_be_symbolic(tmp_path, decl, stage):
    """A layer whose weights take their size from a symbolic dim is refused by its shape rule,
    once, at the layer (not again by the weights pass, and never with a crash)."""
    refused = _dlc(tmp_path, decl, stage)
    assert isinstance(refused, Rejected) and "`C`" in refused.why, refused


@pytest.mark.parametrize("h", [7, 8, 224])
def test_symbolic_conv_chain_matches_concrete(tmp_path, h):
    """A symbolic H gives a formula that, evaluated, equals PyTorch's size for each concrete H."""
    stage = "conv2d(4, 7, stride=2, padding=3) -> maxpool2d(3, stride=2, padding=1) -> conv2d(4, 3, stride=2, padding=1)"
    result = compile_text(f"network N {{\n input x: f32[B, 3, H, H]\n output y = x -> {stage}\n}}\n", tmp_path)
    assert result.ok, [d.message for d in result.diagnostics]
    g = result.graphs["N"]
    sym = g.values[g.outputs[0][1]].type.shape
    net = nn.Sequential(nn.Conv2d(3, 4, 7, 2, 3), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1))
    out = net(torch.zeros(2, 3, h, h))
    assert tuple(d.evaluate({"B": 2, "H": h}) for d in sym) == tuple(out.shape)
