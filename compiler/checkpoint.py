"""Weights for the backends: a checkpoint checked against the spec, or a seeded init.

A checkpoint is a safetensors file, or with `torch_load` (an explicit opt-in: it imports
torch) a file `torch.load(weights_only=True)` reads. Its keys are the compiler's weight names
(the PyTorch `state_dict` keys of the emitted modules), or another implementation's that a key
map (compiler/keymaps/: torchvision, Hugging Face GPT-2 and BERT, or a user's TOML file)
renames and reshapes. A checkpoint that does not fit raises `CheckpointError` with its
diagnostic (E0107, E0405; a key map that cannot be read, E0108).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from . import messages
from .diagnostics import Diagnostic
from .ir.graph import Graph, Weight
from .source import SourceMap

if TYPE_CHECKING:
    from .keymaps import KeyMap


class CheckpointError(Exception):
    """A checkpoint that cannot be read or does not fit the spec; carries the diagnostic (E0107,
    E0405: every missing, extra or wrongly shaped key with both shapes), rendered like any other.
    `sources` holds the text of a file the diagnostic quotes that is no spec (a key map's)."""

    def __init__(self, diag: Diagnostic, sources: SourceMap | None = None) -> None:
        super().__init__("\n  ".join([diag.message, *diag.notes]))
        self.diag = diag
        self.sources = sources


def load_weights(graph: Graph, checkpoint: str | Path | None = None, weights_from: str | None = None,
                 torch_load: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """The weights of `graph`: `checkpoint` renamed by the key map `weights_from` names (a source,
    `torchvision` or `huggingface`, a shipped map's name or a map's path; see `find_keymap`), else
    the `seed`'s initialization. What `--weights`, `--weights-from` and `--torch-load` do, and the
    function a training loop calls to start from a pretrained checkpoint."""
    if checkpoint is None:
        if weights_from is not None or torch_load:
            raise ValueError("`weights_from` and `torch_load` say how to read a checkpoint: pass one")
        return random_weights(graph, seed)
    keymap = None
    if weights_from is not None:
        from .keymaps import find_keymap  # here: keymaps imports CheckpointError from this module

        keymap = find_keymap(weights_from, graph.name)
    return load_checkpoint(checkpoint, graph, keymap, torch_load)


def load_checkpoint(path: str | Path, graph: Graph, keymap: KeyMap | None = None,
                    torch_load: bool = False) -> dict[str, np.ndarray]:
    """Read a checkpoint, rename its keys with `keymap` and check it against `graph`'s weights
    (missing, extra, wrong shape); the weights under the compiler's names."""
    arrays = _read_torch(path) if torch_load else _read_safetensors(path)
    return fit_checkpoint(graph, arrays, str(path), keymap)


def _read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (OSError, ValueError, TypeError, SafetensorError) as err:  # not there, or not a safetensors file
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise CheckpointError(messages.cannot_read_checkpoint(str(path), reason)) from None


def _read_torch(path: str | Path) -> dict[str, np.ndarray]:
    """A `torch.save`d state_dict, read with `torch.load(weights_only=True)` (no arbitrary code)."""
    import pickle

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except OSError as err:
        raise CheckpointError(messages.cannot_read_checkpoint(str(path), err.strerror or str(err), True)) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(messages.cannot_read_checkpoint(str(path), first, True)) from None
    return _as_arrays(str(path), state)


def _as_arrays(path: str, state: object) -> dict[str, np.ndarray]:
    """What torch.load returned, as numpy arrays by name, if it is a state_dict."""
    import torch

    if not isinstance(state, Mapping):
        raise CheckpointError(messages.cannot_read_checkpoint(path, messages.not_a_state_dict(state), True))
    arrays = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or not isinstance(key, str):
            raise CheckpointError(messages.cannot_read_checkpoint(path, messages.not_a_tensor_entry(key, value), True))
        try:
            arrays[key] = value.detach().cpu().numpy()
        except TypeError:  # bfloat16 and other dtypes numpy has not
            raise CheckpointError(messages.cannot_read_checkpoint(
                path, messages.unsupported_tensor_dtype(key, str(value.dtype)), True)) from None
    return arrays


def fit_checkpoint(graph: Graph, arrays: Mapping[str, np.ndarray], where: str = "checkpoint",
                   keymap: KeyMap | None = None) -> dict[str, np.ndarray]:
    """`arrays` under `graph`'s weight names: renamed by `keymap`, a tied layer's own key (HF's
    `lm_head.weight`) set aside when it equals the weight it ties to; CheckpointError (E0405)
    unless exactly `graph`'s weights are left, each with its shape."""
    wanted = {w.name: w.shape for w in graph.weights}
    origin: dict[str, str] = {}
    problems: list[str] = []
    if keymap is not None:
        mapped = keymap.apply(arrays, wanted)
        arrays, origin, problems = mapped.arrays, mapped.origin, mapped.problems
    arrays, origin, tie_problems = _set_aside_ties(graph, arrays, origin)
    _check(graph, arrays, where, origin, [*problems, *tie_problems], keymap.name if keymap else None)
    return arrays


def check_weights(graph: Graph, arrays: Mapping[str, np.ndarray], where: str = "checkpoint") -> None:
    """Raise CheckpointError unless `arrays` has exactly `graph`'s weights, each with its shape."""
    fit_checkpoint(graph, arrays, where)


def _check(graph: Graph, arrays: Mapping[str, np.ndarray], where: str, origin: Mapping[str, str],
           problems: list[str], keymap: str | None) -> None:
    expected = {w.name: w.shape for w in graph.weights}
    missing = [(name, shape) for name, shape in expected.items() if name not in arrays]
    wrong = [(name, tuple(arrays[name].shape), shape) for name, shape in expected.items()
             if name in arrays and tuple(arrays[name].shape) != shape]
    extra = [(name, tuple(arrays[name].shape)) for name in sorted(set(arrays) - set(expected))]
    if missing or wrong or extra or problems:
        raise CheckpointError(messages.checkpoint_mismatch(where, graph.name, graph.span, missing, wrong, extra,
                                                           origin, problems, keymap))


def tie_aliases(graph: Graph) -> dict[str, str]:
    """A tied layer's own key for the weight it reuses (`lm_head.weight` -> `wte.weight`): the
    emitted module's state_dict has it beside the compiler's weights, sharing the tensor."""
    return {f"{node.weight_scope}.{local}" if node.weight_scope else local: full
            for node in graph.nodes for local, full in node.ties}


def _set_aside_ties(graph: Graph, arrays: Mapping[str, np.ndarray], origin: Mapping[str, str]
                    ) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """A tied layer's own key is the weight it ties to: set aside when both are there and equal
    (a problem when they differ), taken as that weight when only it is there."""
    out, origin, problems = dict(arrays), dict(origin), []
    for alias, tied in tie_aliases(graph).items():
        if alias in out and tied in out:
            if out[alias].shape != out[tied].shape or not np.array_equal(out[alias], out[tied]):
                problems.append(messages.tie_differs(alias, tied, origin.get(alias), origin.get(tied)))
            del out[alias]
        elif alias in out:
            out[tied] = out.pop(alias)
            origin[tied] = origin.pop(alias, None) or messages.mapped_from(alias, False, None)
    return out, origin, problems


def module_state_dict(graph: Graph, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`weights` with each tie alias added: the keys of the emitted PyTorch module's `state_dict`,
    for `module.load_state_dict(..., strict=True)`."""
    out = dict(weights)
    out.update({alias: weights[tied] for alias, tied in tie_aliases(graph).items() if tied in weights})
    return out


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
