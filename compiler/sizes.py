"""Sizes for a graph's symbolic dims: `B=64` given by name, or a concrete input shape unified
with an input's declared type (`x: f32[B, 1, H, W]` with (64, 1, 8, 8) binds B, H and W).

What does not fit the graph (a dim it does not have, a size that contradicts a fixed dim or
another size, a dim the caller needs but nobody sized) raises `SizeError`, whose text comes
from messages.py. These sizes come from the caller (the command line), not from a spec, so
a SizeError has no code and no span: `dlc` prints it as a usage error.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from . import messages
from .ir.dims import Dim
from .ir.graph import Graph

if TYPE_CHECKING:
    from .ir.train import TrainPlan


class SizeError(Exception):
    """Sizes that do not fit a graph; `unbound` names the dims left without a size, if that is why."""

    def __init__(self, message: str, unbound: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.unbound = tuple(unbound)


def input_dims(graph: Graph) -> set[str]:
    """Every symbol in the declared types of `graph`'s inputs."""
    return {s for _, vid in graph.inputs for d in graph.values[vid].type.shape for s in d.symbols()}


def unbound(graph: Graph, names: Sequence[str]) -> SizeError:
    """The error for dims of `graph` that need a size and have none."""
    names = sorted(names)
    return SizeError(messages.unbound_dims(graph.name, names), names)


def bind_sizes(graph: Graph, dims: Mapping[str, int],
               shapes: Sequence[tuple[str | None, Sequence[int]]] = ()) -> dict[str, int]:
    """The sizes `dims` (symbol -> size) and `shapes` ((input name or None for the first input,
    its concrete shape)) give `graph`'s input dims; SizeError if any does not fit."""
    unknown = sorted(set(dims) - input_dims(graph))
    if unknown:
        raise SizeError(messages.unknown_dims(graph.name, unknown))
    bound = dict(dims)
    for name, sizes in shapes:
        if name is None and len(shapes) > 1:
            raise SizeError(messages.unnamed_input_shape())
        for sym, size in _unify(graph, name, sizes):
            if bound.setdefault(sym, size) != size:
                raise SizeError(messages.conflicting_sizes(sym, bound[sym], size))
    return bound


def static_sizes(graph: Graph, dims: Mapping[str, int]) -> dict[str, int]:
    """A size for every symbolic input dim: from `dims`, else the spec's example (`H=224`; B: 1)."""
    sizes = {**dict(graph.dim_examples), **bind_sizes(graph, dims)}
    missing = input_dims(graph) - set(sizes)
    if missing:
        raise unbound(graph, missing)
    return sizes


def _unify(graph: Graph, name: str | None, sizes: Sequence[int]) -> list[tuple[str, int]]:
    """(symbol, size) pairs that make input `name`'s declared type equal to the shape `sizes`."""
    inputs = dict(graph.inputs)
    if name is None:
        if not graph.inputs:
            raise SizeError(messages.unnamed_input_shape())
        name = graph.inputs[0][0]
    if name not in inputs:
        raise SizeError(messages.unknown_input(graph.name, name, list(inputs)))
    declared = graph.values[inputs[name]].type
    if len(sizes) != declared.rank:
        raise SizeError(messages.input_rank_mismatch(name, str(declared), declared.rank, len(sizes)))
    pairs = []
    for d, size in zip(declared.shape, sizes, strict=True):
        if d.is_const:
            if d.value != size:
                raise SizeError(messages.input_size_mismatch(name, str(declared), size, str(d)))
            continue
        symbols = d.symbols()
        if len(symbols) != 1 or d != Dim.sym(next(iter(symbols))):
            raise SizeError(messages.computed_dim(name, str(d)))
        pairs.append((next(iter(symbols)), size))
    return pairs


def trained_sizes(trains: Mapping[str, "TrainPlan"], train_name: str | None, graph: Graph) -> dict[str, int]:
    """The sizes of `graph`'s symbolic input dims that the training definition `train_name` (what a
    `dlc train` checkpoint's metadata names) declares for the input it feeds: `image: f32[B, 1, 8, 8]`
    binds H=8, W=8 of DigitsCNN's `x: f32[B, 1, H, W]`. Empty when the definition is not there or
    declares no float input of the network's rank; the batch dim is left alone."""
    plan = trains.get(train_name or "")
    if plan is None or len(graph.inputs) != 1:
        return {}
    sizes = graph.values[graph.inputs[0][1]].type.shape
    for declared in plan.data.inputs:
        if declared.dtype == "f32" and len(declared.dims) == len(sizes):
            return {str(d): int(n) for d, n in zip(sizes[1:], declared.dims[1:], strict=True)
                    if not d.is_const and str(d).isidentifier() and isinstance(n, int)}
    return {}
