"""What the PyTorch source emitter knows about each op: module, call and output-size source.

`TORCH[op]` turns an op application, given as Python source (`OpSource`), into
  - `module`: the constructor of an nn.Module whose state_dict holds exactly the op's weights
    (`OPS[op].weights`), e.g. `nn.Conv2d(c, 64, 3, stride=2, padding=1, bias=False)`;
  - `call`: the expression that applies it in `forward()` (`self.conv1(h)`, `F.relu(h)`,
    `torch.cat([a, b], dim=1)`); weight-free ops also have a functional form (ref None);
  - `shape`: the output dims as Python source where they can be written (`"64"`, `"c + 32"`),
    None elsewhere, so that the emitter can size later layers (`nn.Linear(16 * 5 * 5, 120)`).
Keywords are printed only when the spec gave them or when they differ from PyTorch's default.
Helper classes and functions named in `helpers` live in runtime/layers.py (dlc.runtime.layers).

`module` raises MissingSize when it needs an input size that is unknown (None in `in_shapes`).
`shape` writes None for sizes it cannot express, and raises ValueError only when the number or
rank of the outputs depends on an attr that is not a literal (flatten's start/end, a reshape
shape that is not a tuple, chunk's chunks, sum/mean's dim and keepdim, lstm/gru's state);
layernorm's module needs a literal `dims` likewise.
"""
from __future__ import annotations

from typing import Any, Callable

from ...ir.dims import Dim
from ...ops.pool import pool_out
from .forms import (
    Args, Dims, MissingSize, OpSource, ShapeFn, TorchEntry, weight_free, _ALWAYS, _atom, _call, _const,
    _dim_attr, _expr, _is_default, _items, _join, _kw, _method, _multi, _norm, _pair, _per_dim, _product,
    _same, _simplify, _size, _tidy, _unary, _unknown, _UNKNOWN, _value, _weighted,
)


# --- activations ---------------------------------------------------------------------------------

def _dim_always(src: OpSource) -> list[str | None]:
    return [f"dim={_tidy(src.attrs['dim'])}"]


def _activations() -> dict[str, TorchEntry]:
    return {
        "relu": _pair("nn.ReLU", "F.relu"),
        "leaky_relu": _pair("nn.LeakyReLU", "F.leaky_relu", lambda s: [_kw(s, "slope", 0.01, "")]),
        "sigmoid": _pair("nn.Sigmoid", "torch.sigmoid"),
        "tanh": _pair("nn.Tanh", "torch.tanh"),
        "softplus": _pair("nn.Softplus", "F.softplus", lambda s: [_kw(s, "beta", 1.0)]),
        "gelu": _pair("nn.GELU", "F.gelu", lambda s: [_kw(s, "approximate", "none")]),
        "elu": _pair("nn.ELU", "F.elu", lambda s: [_kw(s, "alpha", 1.0)]),
        "silu": _pair("nn.SiLU", "F.silu"),
        "abs": _pair("Abs", "torch.abs", helpers=("Abs",)),
        "exp": _pair("Exp", "torch.exp", helpers=("Exp",)),
        "identity": _unary(lambda s: "nn.Identity()", lambda s, x: x),
        "scale": _unary(lambda s: _call("Scale", [_tidy(s.attrs["factor"])]),
                        lambda s, x: _join("*", [x, _tidy(s.attrs["factor"])]), helpers=("Scale",)),
        "softmax": _pair("nn.Softmax", "F.softmax", _dim_always),
        "log_softmax": _pair("nn.LogSoftmax", "F.log_softmax", _dim_always),
    }


# --- convolutions ----------------------------------------------------------------------------------

_CONV_SIZE = "({0} + 2 * {1} - {2} * ({3} - 1) - 1) // {4} + 1"  # size, padding, dilation, kernel, stride
_TCONV_SIZE = "({0} - 1) * {4} - 2 * {1} + {2} * ({3} - 1) + {5} + 1"  # ..., output_padding


def _columns(src: OpSource, names: tuple[str, ...], n: int) -> list[tuple[str | None, ...]]:
    """Per spatial dim, the sources of the named `int | [int]` attrs (None where not knowable)."""
    cols = [_per_dim(src.attrs[name], n) if name in src.attrs else ["1"] * n for name in names]
    return list(zip(*(c or [None] * n for c in cols)))


def _conv_shape(n: int, transposed: bool = False) -> ShapeFn:
    def shape(src: OpSource) -> list[Dims]:
        x = src.in_shapes[0]
        if _value(src.attrs["padding"]) == "same":
            spatial = list(x[2:])
        else:
            names = ("padding", "dilation", "kernel", "stride") + (("output_padding",) if transposed else ())
            rule = _TCONV_SIZE if transposed else _CONV_SIZE
            spatial = [_expr(rule, size, *col) for size, col in zip(x[2:], _columns(src, names, n))]
        return [(x[0], _simplify(src.attrs["out"]), *spatial)]
    return shape


_CONV_KWS = (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1), ("bias", True))
_TCONV_KWS = (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1), ("groups", 1), ("bias", True))
_MASKED_KWS = (("mask", _ALWAYS), ("stride", 1), ("padding", "same"), ("dilation", 1), ("groups", 1), ("bias", True))


def _conv_module(cls: str, kws: tuple[tuple[str, Any], ...]) -> Callable[[OpSource], str]:
    def module(src: OpSource) -> str:
        head = [_size(src, 0, 1), _tidy(src.attrs["out"]), _tidy(src.attrs["kernel"], compact=True)]
        return _call(cls, head + [_kw(src, name, default) for name, default in kws])
    return module


def _convolutions() -> dict[str, TorchEntry]:
    table = {}
    for n in (1, 2, 3):
        table[f"conv{n}d"] = _weighted(f"conv{n}d", _conv_module(f"nn.Conv{n}d", _CONV_KWS), _conv_shape(n))
        tconv = _conv_module(f"nn.ConvTranspose{n}d", _TCONV_KWS)
        table[f"conv_transpose{n}d"] = _weighted(f"conv_transpose{n}d", tconv, _conv_shape(n, transposed=True))
    table["masked_conv2d"] = _weighted("masked_conv2d", _conv_module("MaskedConv2d", _MASKED_KWS), _conv_shape(2),
                                       ("MaskedConv2d",))
    return table


# --- pooling and resampling -------------------------------------------------------------------------

def _pool_size(size: str | None, padding: str | None, dilation: str | None, kernel: str | None,
               stride: str | None, ceil_mode: Any) -> str | None:
    if ceil_mode is False:
        return _expr(_CONV_SIZE, size, padding, dilation, kernel, stride)
    vals = [_value(t) if t is not None else _UNKNOWN for t in (size, kernel, stride, padding, dilation)]
    if ceil_mode is True and all(isinstance(v, int) for v in vals):
        s, k, st, p, d = vals
        return str(pool_out(Dim.const(s), k, st, p, d, True).value)
    return None


def _pool_shape(n: int) -> ShapeFn:
    def shape(src: OpSource) -> list[Dims]:
        x, a = src.in_shapes[0], src.attrs
        stride = a["kernel"] if _value(a["stride"]) is None else a["stride"]
        s = OpSource({**a, "stride": stride}, src.given, src.in_shapes)
        cols = _columns(s, ("padding", "dilation", "kernel", "stride"), n)
        ceil = _value(a["ceil_mode"])
        return [(*x[:2], *(_pool_size(size, *col, ceil) for size, col in zip(x[2:], cols)))]
    return shape


def _pool_args(kws: tuple[tuple[str, Any], ...]) -> Args:
    return lambda s: [_tidy(s.attrs["kernel"], compact=True), *(_kw(s, name, d) for name, d in kws)]


def _adaptive_shape(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    n = len(x) - 2
    return [(*x[:2], *(_per_dim(src.attrs["output"], n) or [None] * n))]


def _global_entry(kind: str) -> TorchEntry:
    """global_avgpool / global_maxpool: adaptive pooling to size 1, keeping the spatial dims."""
    def name(src: OpSource, fmt: str) -> str:
        n = len(src.in_shapes[0]) - 2
        if n not in (1, 2, 3):
            raise ValueError(f"global pooling of {n} spatial dims has no PyTorch layer")
        return fmt.format(n=n)
    cls, fn = f"nn.Adaptive{kind.title()}Pool{{n}}d", f"F.adaptive_{kind}_pool{{n}}d"
    return _unary(lambda s: f"{name(s, cls)}(1)", lambda s, x: f"{name(s, fn)}({x}, 1)",
                  lambda s: [(*s.in_shapes[0][:2], *("1",) * (len(s.in_shapes[0]) - 2))])


def _scale_factor(src: OpSource) -> str:
    v = _value(src.attrs["scale"])
    return str(int(v)) if isinstance(v, float) and v.is_integer() else _tidy(src.attrs["scale"])


def _upsample_args(src: OpSource) -> list[str | None]:
    mode = _value(src.attrs["mode"])
    corners = None if mode == "nearest" else _kw(src, "align_corners", False)
    return [f"scale_factor={_scale_factor(src)}", _kw(src, "mode", "nearest"), corners]


def _upsample_shape(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    v = _value(src.attrs["scale"])
    factor = str(int(v)) if isinstance(v, (int, float)) else f"int({src.attrs['scale']})"
    return [(*x[:2], *(_expr("{0} * {1}", d, factor) for d in x[2:]))]


def _pooling() -> dict[str, TorchEntry]:
    max_kws = (("stride", None), ("padding", 0), ("dilation", 1), ("ceil_mode", False))
    avg_kws = (("stride", None), ("padding", 0), ("ceil_mode", False), ("count_include_pad", True))
    table = {}
    for n in (1, 2):
        table[f"maxpool{n}d"] = _pair(f"nn.MaxPool{n}d", f"F.max_pool{n}d", _pool_args(max_kws), _pool_shape(n))
        table[f"avgpool{n}d"] = _pair(f"nn.AvgPool{n}d", f"F.avg_pool{n}d", _pool_args(avg_kws), _pool_shape(n))
        output: Args = lambda s: [_tidy(s.attrs["output"], compact=True)]
        for kind in ("avg", "max"):
            table[f"adaptive_{kind}pool{n}d"] = _pair(f"nn.Adaptive{kind.title()}Pool{n}d",
                                                      f"F.adaptive_{kind}_pool{n}d", output, _adaptive_shape)
    table["global_avgpool"] = _global_entry("avg")
    table["global_maxpool"] = _global_entry("max")
    table["upsample"] = _pair("nn.Upsample", "F.interpolate", _upsample_args, _upsample_shape)
    return table


# --- normalization and regularization ------------------------------------------------------------------

def _layernorm_module(src: OpSource) -> str:
    x = src.in_shapes[0]
    n = _const(src, "dims")
    dims = [_size(src, 0, d) for d in range(len(x) - n, len(x))]
    shape = dims[0] if n == 1 else f"({', '.join(dims)})"
    return _call("nn.LayerNorm", [shape, _kw(src, "eps", 1e-5), _kw(src, "affine", True, "elementwise_affine")])


def _dropout(cls: str, fn: str) -> TorchEntry:
    p: Args = lambda s: [_kw(s, "p", 0.5, "")]
    return _unary(lambda s: _call(cls, p(s)), lambda s, x: _call(fn, [x, *p(s), "training=self.training"]))


def _normalization() -> dict[str, TorchEntry]:
    table = {}
    for n in (1, 2):
        bn = lambda s, n=n: _call(f"nn.BatchNorm{n}d", [_size(s, 0, 1), _kw(s, "eps", 1e-5), _kw(s, "momentum", 0.1),
                                                         _kw(s, "affine", True)])
        table[f"batchnorm{n}d"] = _weighted(f"batchnorm{n}d", bn, _same)
    table["layernorm"] = _weighted("layernorm", _layernorm_module, _same)
    table["groupnorm"] = _weighted("groupnorm", lambda s: _call("nn.GroupNorm", [
        _tidy(s.attrs["groups"]), _size(s, 0, 1), _kw(s, "eps", 1e-5)]), _same)
    table["dropout"] = _dropout("nn.Dropout", "F.dropout")
    table["dropout2d"] = _dropout("nn.Dropout2d", "F.dropout2d")
    return table


# --- dense, embeddings, attention, recurrent -----------------------------------------------------------

def _linear_shape(src: OpSource) -> list[Dims]:
    return [(*src.in_shapes[0][:-1], _simplify(src.attrs["out"]))]


def _mha_module(src: OpSource) -> str:
    e = _size(src, 0, -1)
    kdim = _size(src, 1, -1) if len(src.in_shapes) > 1 else e
    vdim = _size(src, 2, -1) if len(src.in_shapes) > 2 else kdim
    return _call("MultiheadAttention", [
        e, _tidy(src.attrs["heads"]), _kw(src, "dropout", 0.0), _kw(src, "bias", True), _kw(src, "causal", False),
        f"kdim={kdim}" if kdim != e else None, f"vdim={vdim}" if vdim != kdim else None])


def _attention_call(src: OpSource, inputs: list[str]) -> str:
    scaled = src.attrs["scaled"]
    scale = None if _value(scaled) is True else "scale=1.0" if _value(scaled) is False else \
        f"scale=None if {scaled} else 1.0"
    return _call("F.scaled_dot_product_attention", [*inputs, _kw(src, "causal", False, "is_causal"), scale])


def _attention_shape(src: OpSource) -> list[Dims]:
    q, _, v = src.in_shapes
    return [(*q[:-1], v[-1])]


def _dirs(src: OpSource) -> str:
    v = _value(src.attrs["bidirectional"])
    return "2" if v is True else "1" if v is False else f"(2 if {src.attrs['bidirectional']} else 1)"


def _rnn_shape(n_states: int) -> ShapeFn:
    def shape(src: OpSource) -> list[Dims]:
        b, t = src.in_shapes[0][:2]
        dirs, hidden = _dirs(src), _simplify(src.attrs["hidden"])
        out = (b, t, _expr("{0} * {1}", dirs, hidden))
        state = (_expr("{0} * {1}", dirs, src.attrs["layers"]), b, hidden)
        return [out] + ([state] * n_states if _const(src, "state") else [])
    return shape


def _rnn_module(cls: str) -> Callable[[OpSource], str]:
    def module(src: OpSource) -> str:
        return _call(cls, [_size(src, 0, -1), _tidy(src.attrs["hidden"]), _kw(src, "layers", 1, "num_layers"),
                           _kw(src, "dropout", 0.0), _kw(src, "bidirectional", False),
                           _kw(src, "state", False, "return_state")])
    return module


def _sinusoidal() -> TorchEntry:
    module = lambda s: _call("SinusoidalPositionalEncoding", [_size(s, 0, -1), _kw(s, "max_len", 5000)])
    return _unary(module, lambda s, x: f"add_sinusoidal_encoding({x})",
                  helpers=("sinusoidal_table", "add_sinusoidal_encoding", "SinusoidalPositionalEncoding"))


def _sequence() -> dict[str, TorchEntry]:
    return {
        "linear": _weighted("linear", lambda s: _call("nn.Linear", [
            _size(s, 0, -1), _tidy(s.attrs["out"]), _kw(s, "bias", True)]), _linear_shape),
        "embedding": _weighted("embedding", lambda s: _call("nn.Embedding", [
            _tidy(s.attrs["num"]), _tidy(s.attrs["dim"]), _kw(s, "padding_idx", None)]),
            lambda s: [(*s.in_shapes[0], _simplify(s.attrs["dim"]))]),
        "pos_embedding": _weighted("pos_embedding", lambda s: _call("PositionalEmbedding", [
            _tidy(s.attrs["max_len"]), _size(s, 0, -1)]), _same, ("PositionalEmbedding",)),
        "sinusoidal_pe": _sinusoidal(),
        "mha": _weighted("mha", _mha_module, _same, ("MultiheadAttention",)),
        "attention": _multi(_attention_call, _attention_shape),
        "additive_attention": _weighted("additive_attention", lambda s: _call("AdditiveAttention", [
            _size(s, 0, -1), _size(s, 1, -1), _tidy(s.attrs["units"])]),
            lambda s: [(*s.in_shapes[0][:2], s.in_shapes[1][-1])], ("AdditiveAttention",)),
        "lstm": _weighted("lstm", _rnn_module("LSTM"), _rnn_shape(2), ("LSTM",)),
        "gru": _weighted("gru", _rnn_module("GRU"), _rnn_shape(1), ("GRU",)),
    }


# --- reshaping --------------------------------------------------------------------------------------------

def _flatten_shape(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    s, e = _norm(_const(src, "start"), len(x)), _norm(_const(src, "end"), len(x))
    return [(*x[:s], _product(list(x[s:e + 1])), *x[e + 1:])]


def _with_inferred(sizes: list[str], known_total: str | None) -> Dims:
    """`sizes` with its -1 replaced by known_total // (product of the others), where writable."""
    if "-1" not in sizes:
        return tuple(_simplify(t) for t in sizes)
    rest = _product([t for t in sizes if t != "-1"])
    missing = _expr("{0} // {1}", known_total, rest)
    return tuple(missing if t == "-1" else _simplify(t) for t in sizes)


def _literal_items(src: OpSource, name: str) -> list[str]:
    items = _items(src.attrs[name])
    if items is None:
        v = _const(src, name)
        items = [str(v)] if isinstance(v, int) else [repr(x) for x in v]
    return [_simplify(t) for t in items]


def _reshape_shape(src: OpSource) -> list[Dims]:
    return [_with_inferred(_literal_items(src, "shape"), _product(list(src.in_shapes[0])))]


def _unflatten_shape(src: OpSource) -> list[Dims]:
    x, sizes = src.in_shapes[0], _literal_items(src, "sizes")
    d = _dim_attr(src, "dim", len(x))
    if d is None:
        return [_unknown(len(x) + len(sizes) - 1)]
    return [(*x[:d], *_with_inferred(sizes, x[d]), *x[d + 1:])]


def _permute_shape(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    order = [_value(d) for d in _items(src.attrs["dims"]) or []]
    if len(order) != len(x) or not all(isinstance(d, int) for d in order):
        return [_unknown(len(x))]
    return [tuple(x[_norm(d, len(x))] for d in order)]


def _transpose_shape(src: OpSource) -> list[Dims]:
    x = list(src.in_shapes[0])
    i, j = (_dim_attr(src, k, len(x)) for k in ("dim0", "dim1"))
    if i is None or j is None:
        return [_unknown(len(x))]
    x[i], x[j] = x[j], x[i]
    return [tuple(x)]


def _unsqueeze_shape(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    d = _dim_attr(src, "dim", len(x) + 1)
    return [_unknown(len(x) + 1) if d is None else (*x[:d], "1", *x[d:])]


def _drop_dim(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    d = _dim_attr(src, "dim", len(x))
    return [_unknown(len(x) - 1) if d is None else (*x[:d], *x[d + 1:])]


def _spread(src: OpSource, name: str) -> list[str]:
    """`h.permute(0, 2, 1)`-style arguments: the items of a tuple attr, or the attr itself."""
    items = _items(src.attrs[name])
    return [_simplify(t) for t in items] if items is not None else [_tidy(src.attrs[name])]


def _flatten_args(src: OpSource) -> list[str | None]:
    """nn.Flatten's positional (start_dim, end_dim), each only when needed."""
    end = _kw(src, "end", -1, "")
    return [_kw(src, "start", 1, "") if end is None else _tidy(src.attrs["start"]), end]


def _reshaping() -> dict[str, TorchEntry]:
    return {
        "flatten": _method("nn.Flatten", "flatten", _flatten_args,
                           lambda s: [_tidy(s.attrs["start"]), _kw(s, "end", -1, "")], _flatten_shape),
        "reshape": _method("Reshape", "reshape", lambda s: [_tidy(s.attrs["shape"])], lambda s: _spread(s, "shape"),
                           _reshape_shape),
        "unflatten": _method("nn.Unflatten", "unflatten", lambda s: [_tidy(s.attrs["dim"]), _tidy(s.attrs["sizes"])],
                             shape=_unflatten_shape),
        "permute": _method("Permute", "permute", lambda s: [_tidy(s.attrs["dims"])], lambda s: _spread(s, "dims"),
                           _permute_shape),
        "transpose": _method("Transpose", "transpose", lambda s: [_tidy(s.attrs["dim0"]), _tidy(s.attrs["dim1"])],
                             shape=_transpose_shape),
        "unsqueeze": _method("Unsqueeze", "unsqueeze", lambda s: [_tidy(s.attrs["dim"])], shape=_unsqueeze_shape),
        "squeeze": _method("Squeeze", "squeeze", lambda s: [_tidy(s.attrs["dim"])], shape=_drop_dim),
    }


# --- combining and splitting -----------------------------------------------------------------------------

def _broadcast(shapes: list[Dims]) -> Dims:
    """Right-aligned broadcast of dim sources: the first size other than "1" at each position."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        sized = [d for d in dims if d is not None and _value(d) != 1]
        out.append(sized[0] if sized else "1" if None not in dims else None)
    return tuple(out)


def _broadcast_shape(src: OpSource) -> list[Dims]:
    return [_broadcast(list(src.in_shapes))]


def _matmul_shape(src: OpSource) -> list[Dims]:
    x, y = src.in_shapes
    return [(*_broadcast([x[:-2], y[:-2]]), x[-2], y[-1])]


def _concat_shape(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    d = _dim_attr(src, "dim", len(x))
    if d is None:
        return [_unknown(len(x))]
    return [(*x[:d], _expr(" + ".join(f"{{{i}}}" for i in range(len(src.in_shapes))),
                          *(s[d] for s in src.in_shapes)), *x[d + 1:])]


def _parts_shape(src: OpSource, sizes: list[str | None]) -> list[Dims]:
    x = src.in_shapes[0]
    d = _dim_attr(src, "dim", len(x))
    return [_unknown(len(x)) if d is None else (*x[:d], size, *x[d + 1:]) for size in sizes]


def _chunk_shape(src: OpSource) -> list[Dims]:
    chunks = _const(src, "chunks")
    x = src.in_shapes[0]
    d = _dim_attr(src, "dim", len(x))
    part = None if d is None else _expr("{0} // {1}", x[d], str(chunks))
    return _parts_shape(src, [part] * chunks)


def _split_shape(src: OpSource) -> list[Dims]:
    return _parts_shape(src, _literal_items(src, "sizes"))


def _combining() -> dict[str, TorchEntry]:
    cat = lambda s, xs: _call("torch.cat", [f"[{', '.join(xs)}]", _kw(s, "dim", 0)])
    return {
        "concat": _multi(cat, _concat_shape),
        "add": _multi(lambda s, xs: _join("+", xs), _broadcast_shape),
        "sub": _multi(lambda s, xs: _join("-", xs), _broadcast_shape),
        "mul": _multi(lambda s, xs: _join("*", xs), _broadcast_shape),
        "div": _multi(lambda s, xs: _join("/", xs), _broadcast_shape),
        "matmul": _multi(lambda s, xs: _join("@", xs), _matmul_shape),
        "chunk": _method("Chunk", "chunk", lambda s: [_tidy(s.attrs["chunks"]), _kw(s, "dim", 1)],
                         lambda s: [_tidy(s.attrs["chunks"]), _kw(s, "dim", 0)], _chunk_shape),
        "split": _method("Split", "split", lambda s: [_tidy(s.attrs["sizes"]), _kw(s, "dim", 1)],
                         lambda s: [_tidy(s.attrs["sizes"]), _kw(s, "dim", 0)], _split_shape),
        "cosine_similarity": _multi(lambda s, xs: _call("F.cosine_similarity", [
            *xs, _kw(s, "dim", 1), _kw(s, "eps", 1e-8)]), _cosine_shape),
        "reparameterize": _multi(lambda s, xs: _call("reparameterize", [*xs, "self.training"]), _same,
                                 ("reparameterize",)),
    }


def _cosine_shape(src: OpSource) -> list[Dims]:
    shape = _broadcast(list(src.in_shapes))
    d = _dim_attr(src, "dim", len(shape))
    if d is None:
        return [_unknown(len(shape) - 1)]
    return [(*shape[:d], *shape[d + 1:])]


# --- indexing and reductions -------------------------------------------------------------------------------

def _index(x: str, dim: Any, key: str) -> str | None:
    """`x[:, key]` for a literal dim (`x[..., key]` counting from the end); None otherwise."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        return None
    lead = [":"] * dim if dim >= 0 else ["..."]
    trail = [":"] * (-dim - 1) if dim < 0 else []
    return f"{_atom(x)}[{', '.join([*lead, key, *trail])}]"


def _select_call(src: OpSource, x: str) -> str:
    index = _tidy(src.attrs["index"])
    return _index(x, _value(src.attrs["dim"]), index) or f"{_atom(x)}.select({_tidy(src.attrs['dim'])}, {index})"


def _slice_key(src: OpSource) -> str:
    start = "" if _is_default(src.attrs["start"], 0) else _simplify(src.attrs["start"])
    end = "" if _is_default(src.attrs["end"], None) else _simplify(src.attrs["end"])
    step = "" if _is_default(src.attrs["step"], 1) else f":{_simplify(src.attrs['step'])}"
    return f"{start}:{end}{step}"


def _slice_args(src: OpSource) -> list[str | None]:
    return [_tidy(src.attrs["dim"]), _kw(src, "start", 0), _kw(src, "end", None), _kw(src, "step", 1)]


def _slice_call(src: OpSource, x: str) -> str:
    return _index(x, _value(src.attrs["dim"]), _slice_key(src)) or f"{_call('Slice', _slice_args(src))}({x})"


def _slice_shape(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    d = _dim_attr(src, "dim", len(x))
    if d is None:
        return [_unknown(len(x))]
    a = src.attrs
    stop = x[d] if _value(a["end"]) is None else _expr("min({0}, {1})", a["end"], x[d])
    if _is_default(a["step"], 1):
        length = _expr("{0} - {1}", stop, a["start"])
    else:
        length = _expr("({0} - {1} + {2} - 1) // {2}", stop, a["start"], a["step"])
    return [(*x[:d], length, *x[d + 1:])]


def _reduce_shape(src: OpSource) -> list[Dims]:
    x = src.in_shapes[0]
    v = _const(src, "dim")
    dims = {_norm(d, len(x)) for d in ((v,) if isinstance(v, int) else v)}
    keep = _const(src, "keepdim")
    return [tuple("1" if i in dims else s for i, s in enumerate(x) if keep or i not in dims)]


def _reduction(cls: str, method: str) -> TorchEntry:
    return _method(cls, method, lambda s: [_kw(s, "dim", -1), _kw(s, "keepdim", False)],
                   lambda s: [f"dim={_tidy(s.attrs['dim'], compact=True)}", _kw(s, "keepdim", False)], _reduce_shape)


def _indexing() -> dict[str, TorchEntry]:
    return {
        "select": _unary(lambda s: _call("Select", [_tidy(s.attrs["dim"]), _tidy(s.attrs["index"])]), _select_call,
                         _drop_dim, ("Select",)),
        "slice": _unary(lambda s: _call("Slice", _slice_args(s)), _slice_call, _slice_shape, ("Slice",)),
        "sum": _reduction("Sum", "sum"),
        "mean": _reduction("Mean", "mean"),
    }


TORCH: dict[str, TorchEntry] = {**_activations(), **_convolutions(), **_pooling(), **_normalization(),
                                **_sequence(), **_reshaping(), **_combining(), **_indexing()}

__all__ = ["TORCH", "MissingSize", "OpSource", "TorchEntry", "weight_free"]
