"""The op table: one `OpDef` per op, holding everything the compiler knows about it.

An entry carries its parameters (with validators), input/output arity, shape rule, weights
(named as in a PyTorch `state_dict`), cost, the documentation line and category of
docs/ops.md, and each backend's form of the op: `torch` (a `TorchEntry`, written with
compiler/emit/torch/forms.py) and `onnx` (a converter, written with
compiler/emit/onnx/context.py). TVM imports the ONNX form and needs none of its own.

Entries live in family modules beside this one (activation, conv, pool, norm, dense, shape,
combine, indexing, embedding, attention, recurrent, generative, loss, internal), each op's forms in
the same `OpDef(...)` as its shape rule. Adding an op means adding one entry to its family and
its test cases, nothing else; tests/test_op_registry.py checks that every entry is complete.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..ir.dims import Dim, Shape, numel, undecided
from ..ir.types import FLOAT_DTYPES, TensorType

if TYPE_CHECKING:
    from ..emit.onnx.context import Converter
    from ..emit.torch.forms import TorchEntry


class ShapeError(Exception):
    """Raised by a shape rule; `input_index` says which input is at fault, if one is."""

    def __init__(self, problem: str, input_index: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.input_index = input_index


class ArgError(Exception):
    """Raised by a parameter validator with a short description of the problem."""


REQUIRED = object()


@dataclass(frozen=True)
class Param:
    name: str
    check: Callable[[Any], Any]  # validates and normalizes (lists become tuples)
    default: Any = REQUIRED
    type_name: str = ""


Attrs = Mapping[str, Any]
Types = list[TensorType]
WeightSpec = tuple[str, Shape, bool]  # (local name, shape, trainable)


def _no_weights(a: Attrs, ins: Types) -> list[WeightSpec]:
    return []


def _no_macs(a: Attrs, ins: Types, outs: Types) -> Dim:
    return Dim.const(0)


@dataclass(frozen=True)
class OpDef:
    name: str
    params: tuple[Param, ...]
    infer: Callable[[Attrs, Types], Types]
    doc: str
    rule: str
    category: str
    inputs: tuple[int, int] = (1, 1)  # (min, max); max -1 means any number
    outputs: Callable[[Attrs, int], int] = field(default=lambda a, n_in: 1)
    weights: Callable[[Attrs, Types], list[WeightSpec]] = _no_weights
    macs: Callable[[Attrs, Types, Types], Dim] = _no_macs
    elementwise_flops: int = 0  # FLOPs per output element beyond the MACs
    input_flops: int = 0  # FLOPs per input element (reductions)
    torch: TorchEntry | None = None  # None only for internal ops, which the PyTorch emitter never sees
    onnx: Converter | None = None

    @property
    def weight_free(self) -> bool:
        """True when the op never has weights, whatever its attrs (it then has a functional form)."""
        return self.weights is _no_weights

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def flops(self, a: Attrs, ins: Types, outs: Types) -> Dim:
        extra = sum((numel(o.shape) for o in outs), Dim.const(0)) * self.elementwise_flops
        extra = extra + sum((numel(i.shape) for i in ins), Dim.const(0)) * self.input_flops
        return self.macs(a, ins, outs) * 2 + extra

    def has_weight(self, a: Attrs, ins: Types, name: str) -> bool:
        return any(w[0] == name for w in self.weights(a, ins))


OPS: dict[str, OpDef] = {}


def spec_op(name: str) -> OpDef | None:
    """The op a spec may call by `name`, or None: the ops the compiler inserts itself (category
    `internal`: `expect`, `parameter`) are not a spec's to call (`x -> expect` is an unknown name)."""
    op = OPS.get(name)
    return op if op is not None and op.category != "internal" else None


def register(*ops: OpDef) -> None:
    for op in ops:
        assert op.name not in OPS, op.name
        OPS[op.name] = op


# --- parameter validators ---------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def int_(minimum: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if not _is_int(v):
            raise ArgError(f"expected an integer, got {describe(v)}")
        if minimum is not None and v < minimum:
            raise ArgError(f"must be at least {minimum}, got {v}")
        return v
    return check


def float_(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArgError(f"expected a number, got {describe(v)}")
    return float(v)


def prob(v: Any) -> float:
    v = float_(v)
    if not 0.0 <= v < 1.0:
        raise ArgError(f"must be in [0, 1), got {v}")
    return v


def bool_(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ArgError(f"expected `true` or `false`, got {describe(v)}")
    return v


def choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ArgError(f"expected one of {', '.join(repr(o) for o in options)}, got {describe(v)}")
        return v
    return check


def ints(n: int, minimum: int = 0) -> Callable[[Any], tuple[int, ...]]:
    """An int, repeated n times, or a list of n ints: `3` or `[3, 5]`."""
    def check(v: Any) -> tuple[int, ...]:
        vals = (v,) * n if _is_int(v) else tuple(v) if isinstance(v, (list, tuple)) else None
        if vals is None or len(vals) != n or not all(_is_int(x) for x in vals):
            raise ArgError(f"expected an integer or a list of {n} integers, got {describe(v)}")
        if any(x < minimum for x in vals):
            raise ArgError(f"values must be at least {minimum}, got {describe(v)}")
        return vals
    return check


def padding(n: int) -> Callable[[Any], tuple[int, ...] | str]:
    """`"same"`, `"valid"` (= 0), an int or a list of n ints."""
    base = ints(n)

    def check(v: Any) -> tuple[int, ...] | str:
        if v == "same":
            return "same"
        if v == "valid":
            return (0,) * n
        return base(v)
    return check


def int_list(v: Any) -> tuple[int, ...]:
    if _is_int(v):
        return (v,)
    if not isinstance(v, (list, tuple)) or not all(_is_int(x) for x in v):
        raise ArgError(f"expected a list of integers, got {describe(v)}")
    return tuple(v)


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else check(v)


def describe(v: Any) -> str:
    if isinstance(v, bool):
        return "`true`" if v else "`false`"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(describe(x).strip("`") for x in v) + "]"
    if v is None:
        return "`none`"
    return f"`{v}`"


# --- helpers shared by shape rules ------------------------------------------------------

def norm_dim(dim: int, rank: int, input_index: int | None = 0) -> int:
    if not -rank <= dim < rank:
        raise ShapeError(f"dimension {dim} is out of range for a rank-{rank} tensor", input_index)
    return dim % rank


def need_rank(t: TensorType, ranks: tuple[int, ...], what: str, index: int = 0) -> None:
    if t.rank not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ShapeError(f"expects a rank-{want} input {what}, got {t.rank} dims {_fmt(t)}", index)


def need_float(t: TensorType, index: int = 0) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"expects a floating-point input, got {t.dtype}", index)


def concrete(d: Dim, what: str, index: int | None = 0) -> int | Dim:
    """A size that must not vary from call to call: its value, or -- for a backend that writes one
    module for many instances (see ir/dims.py) -- the static Dim it is when the module is built."""
    if d.is_const:
        return d.value
    if d.is_static:
        return d
    raise ShapeError(f"{what} must be a fixed size, got symbolic `{d}`", index)


def divides(k: int | Dim, n: int | Dim) -> bool:
    """Whether `k` divides `n`; true when either is a static Dim (decided when the module is built)."""
    if isinstance(k, Dim) or isinstance(n, Dim):
        return True
    return n % k == 0


def differ(a: Dim, b: Dim) -> bool:
    """Two sizes that are different (not when only building the module decides: see ir/dims.py)."""
    return a != b and not undecided(a, b)


def shapes_differ(a: Shape, b: Shape) -> bool:
    return len(a) != len(b) or any(differ(x, y) for x, y in zip(a, b))


def exactly(d: Dim, k: int | Dim) -> Dim | None:
    """`d / k` when `k` divides `d` exactly as polynomials, `d // k` when only building the
    module decides, else None."""
    q = d.exact_div(k)
    if q is None and undecided(d, Dim.of(k)):
        return d // k
    return q


def _fmt(t: TensorType) -> str:
    from ..ir.dims import shape_str
    return shape_str(t.shape)


def same(a: Attrs, ins: Types) -> Types:
    """Shape rule of element-wise unary ops."""
    return [ins[0]]


def broadcast(shapes: list[Shape]) -> Shape:
    """NumPy broadcasting over symbolic dims: equal, or one of them 1."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        non_one = [d for d in dims if d != Dim.const(1)]
        first = non_one[0] if non_one else Dim.const(1)
        for j, d in enumerate(non_one):
            if differ(d, first):
                raise ShapeError(f"dimension {i - rank} differs: `{first}` vs `{d}` (broadcasting needs equal sizes or 1)")
        out.append(first)
    return tuple(out)
