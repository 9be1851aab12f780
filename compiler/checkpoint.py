"""Weights for the backends: a safetensors checkpoint checked against the spec, or a seeded init.

A checkpoint that does not fit raises `CheckpointError` with its diagnostic (E0107, E0405).

Keys are the compiler's weight names (the PyTorch `state_dict` keys of the emitted modules).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Mapping

import numpy as np

from . import messages
from .diagnostics import Diagnostic
from .ir.graph import Graph, Weight


class CheckpointError(Exception):
    """A checkpoint that cannot be read or does not fit the spec; carries the diagnostic (E0107,
    E0405: every missing, extra or wrongly shaped key with both shapes), rendered like any other."""

    def __init__(self, diag: Diagnostic) -> None:
        super().__init__("\n  ".join([diag.message, *diag.notes]))
        self.diag = diag


def load_checkpoint(path: str | Path, graph: Graph) -> dict[str, np.ndarray]:
    """Read a safetensors file and check it against `graph`'s weights (missing, extra, wrong shape)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as err:  # not there, or not a safetensors file
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise CheckpointError(messages.cannot_read_checkpoint(str(path), reason)) from None
    check_weights(graph, arrays, str(path))
    return arrays


def check_weights(graph: Graph, arrays: Mapping[str, np.ndarray], where: str = "checkpoint") -> None:
    """Raise CheckpointError unless `arrays` has exactly `graph`'s weights, each with its shape."""
    expected = {w.name: w.shape for w in graph.weights}
    missing = [(name, shape) for name, shape in expected.items() if name not in arrays]
    wrong = [(name, tuple(arrays[name].shape), shape) for name, shape in expected.items()
             if name in arrays and tuple(arrays[name].shape) != shape]
    extra = [(name, tuple(arrays[name].shape)) for name in sorted(set(arrays) - set(expected))]
    if missing or wrong or extra:
        raise CheckpointError(messages.checkpoint_mismatch(where, graph.name, graph.span, missing, wrong, extra))


def random_weights(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """PyTorch-style default initialization, reproducible per (seed, weight name)."""
    return {w.name: _init(w, seed) for w in graph.weights}


def _init(w: Weight, seed: int) -> np.ndarray:
    digest = hashlib.sha256(f"{seed}:{w.name}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    leaf = w.name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(w.shape, dtype=np.int64)
    if leaf in ("running_var",) or (leaf == "weight" and len(w.shape) == 1):
        return np.ones(w.shape, dtype=np.float32)
    if leaf == "running_mean" or (leaf.startswith("bias") and len(w.shape) == 1 and not _is_rnn(leaf)):
        fan_in = _bias_fan_in(w)
        bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
        return _uniform(rng, bound, w.shape) if leaf != "running_mean" else np.zeros(w.shape, dtype=np.float32)
    fan_in = math.prod(w.shape[1:]) if len(w.shape) > 1 else w.shape[0]
    return _uniform(rng, 1 / math.sqrt(max(fan_in, 1)), w.shape)


def _uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...]) -> np.ndarray:
    """U(-bound, bound) drawn directly in float32 (no float64 copy of a 100M-entry weight)."""
    out = rng.random(shape, dtype=np.float32)
    out *= np.float32(2 * bound)
    out -= np.float32(bound)
    return out


def _is_rnn(leaf: str) -> bool:
    return leaf.startswith(("bias_ih", "bias_hh"))


def _bias_fan_in(w: Weight) -> int:
    return max(w.shape[0], 1)
