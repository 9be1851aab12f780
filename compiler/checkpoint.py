"""Weights for the backends: a checkpoint checked against the spec, or a seeded init.

A checkpoint is a safetensors file, or with `torch_load` (an explicit opt-in: it imports
torch) a file `torch.load(weights_only=True)` reads. Its keys are the compiler's weight names
(the PyTorch `state_dict` keys of the emitted modules), or another implementation's that a key
map (compiler/keymaps/: torchvision, Hugging Face GPT-2 and BERT, or a user's TOML file)
renames and reshapes. A checkpoint that does not fit raises `CheckpointError` with its
diagnostic (E0107, E0405; a key map that cannot be read, E0108).

A safetensors file's header is checked before any tensor is read (its length against the
file's, its JSON, every tensor's dtype, shape and byte range), so that an unreadable file is
reported as what is wrong with it, and a pickle is named as one; nothing is ever unpickled.

The dtype rule (`fit_dtypes`), the same for every reader (`dlc export onnx`, `dlc compile`,
`dlc convert-weights`, a training definition's `from`, `dlc train --resume`): a weight has the
dtype of the network's (`weight_dtype`: float32, a batch norm's `num_batches_tracked` int64). A
tensor of another float precision (float64, float16, bfloat16) is cast to float32, and an
integer one of another width to int64, each cast listed in a note; an integer or bool tensor
for a float weight, a float or bool one for an integer weight, or a float64 value beyond
float32's range, is refused (E0405). So what a backend emits never disagrees with the IR.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
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


class UnreadableCheckpoint(CheckpointError):
    """A file that is no checkpoint (E0107); `reason` says what is wrong with it, for a reader
    that words its own error (a training definition's `from`)."""

    def __init__(self, path: str, reason: str, torch_load: bool = False) -> None:
        super().__init__(messages.cannot_read_checkpoint(path, reason, torch_load))
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Cast:
    """A tensor read as the network's dtype instead of its own (`fc.weight`, float64 -> float32)."""

    key: str
    source: str
    target: str


def load_weights(graph: Graph, checkpoint: str | Path | None = None, weights_from: str | None = None,
                 torch_load: bool = False, seed: int = 0, notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """The weights of `graph`: `checkpoint` renamed by the key map `weights_from` names (a source,
    `torchvision` or `huggingface`, a shipped map's name or a map's path; see `find_keymap`), else
    the `seed`'s initialization. What `--weights`, `--weights-from` and `--torch-load` do, and the
    function a training loop calls to start from a pretrained checkpoint. The casts of the dtype
    rule (module docstring) are appended to `notes` as one warning text."""
    if checkpoint is None:
        if weights_from is not None or torch_load:
            raise ValueError("`weights_from` and `torch_load` say how to read a checkpoint: pass one")
        return random_weights(graph, seed)
    keymap = None
    if weights_from is not None:
        from .keymaps import find_keymap  # here: keymaps imports CheckpointError from this module

        keymap = find_keymap(weights_from, graph.name)
    return load_checkpoint(checkpoint, graph, keymap, torch_load, notes)


def load_checkpoint(path: str | Path, graph: Graph, keymap: KeyMap | None = None,
                    torch_load: bool = False, notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read a checkpoint, rename its keys with `keymap` and check it against `graph`'s weights
    (missing, extra, wrong shape, wrong dtype); the weights under the compiler's names."""
    arrays, read_as = read_torch(path) if torch_load else read_safetensors(path)
    return fit_checkpoint(graph, arrays, str(path), keymap, notes=notes, read_as=read_as)


# --- reading a file -------------------------------------------------------------------------

_HEADER_LIMIT = 100_000_000  # safetensors' own limit on the JSON header (its MAX_HEADER_SIZE)
_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
          "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}  # the dtypes numpy holds, and BF16 (read as float32)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One tensor of a safetensors header: `begin`, `end` count bytes from the end of the header."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class _NotSafetensors(Exception):
    """What makes a file no safetensors file (the reason of an E0107)."""


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A safetensors file's tensors by name, and the keys read as float32 because numpy has not
    their dtype (`{"fc.weight": "bfloat16"}`). UnreadableCheckpoint says what is wrong with a
    file that is none: too short, a pickle, a header length past the end, a header that is not
    JSON, a tensor whose bytes run past the end or do not match its shape and dtype."""
    try:
        entries, start = _safetensors_entries(Path(path))
        return _read_entries(Path(path), entries, start)
    except OSError as err:  # not there, a folder, unreadable
        raise UnreadableCheckpoint(str(path), err.strerror or str(err)) from None
    except _NotSafetensors as err:
        raise UnreadableCheckpoint(str(path), str(err)) from None


def _safetensors_entries(path: Path) -> tuple[list[_Entry], int]:
    """The header's tensors, each checked against the file's size, and where their data starts."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _NotSafetensors(_too_short(size))
        pickled = _pickle_kind(path, head)
        if pickled:
            raise _NotSafetensors(_is_a_pickle(pickled))
        length = int.from_bytes(head, "little")
        if length > size - 8:
            raise _NotSafetensors(_header_past_end(length, size))
        if length > _HEADER_LIMIT:
            raise _NotSafetensors(_header_too_large(length))
        header = _parse_header(f.read(length))
    data = size - 8 - length
    entries = [_entry(key, value, data) for key, value in header.items() if key != "__metadata__"]
    _check_coverage(entries, data)
    return entries, 8 + length


def _pickle_kind(path: Path, head: bytes) -> str | None:
    """"zip" for a `torch.save` archive (a zip holding `data.pkl`), "pickle" for a bare pickle."""
    if head.startswith(b"PK\x03\x04"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:  # reads the zip's directory only: nothing is unpickled
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        return "zip" if any(n.endswith("data.pkl") for n in names) else None
    return "pickle" if head[0] == 0x80 and 2 <= head[1] <= 5 else None


def _parse_header(text: bytes) -> dict:
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _NotSafetensors(_header_not_json(err)) from None
    if not isinstance(header, dict):
        raise _NotSafetensors(_header_not_object(header))
    return header


def _entry(key: str, value: object, data: int) -> _Entry:
    """One header entry, checked: a known dtype, a shape, and a byte range inside the data."""
    if not (isinstance(value, dict) and isinstance(value.get("dtype"), str) and _ints(value.get("shape"))
            and _ints(value.get("data_offsets")) and len(value["data_offsets"]) == 2):
        raise _NotSafetensors(_bad_entry(key))
    e = _Entry(key, value["dtype"], tuple(value["shape"]), *value["data_offsets"])
    if e.dtype not in _BYTES:
        raise _NotSafetensors(messages.unsupported_tensor_dtype(key, e.dtype))
    if e.end > data:
        raise _NotSafetensors(_runs_past_end(e.key, e.end, data))
    if e.end - e.begin != math.prod(e.shape) * _BYTES[e.dtype]:
        raise _NotSafetensors(_size_disagrees(e.key, e.dtype, e.shape, e.end - e.begin))
    return e


def _ints(value: object) -> bool:
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)


def _check_coverage(entries: list[_Entry], data: int) -> None:
    """The tensors' bytes follow each other without a gap or an overlap and fill the data
    (safetensors refuses any other layout)."""
    at = 0
    for e in sorted(entries, key=lambda e: (e.begin, e.end)):
        if e.begin != at:
            raise _NotSafetensors(_gap_or_overlap(e.key, e.begin, at))
        at = e.end
    if at != data:
        raise _NotSafetensors(_trailing_bytes(at, data))


def _read_entries(path: Path, entries: list[_Entry], start: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    arrays: dict[str, np.ndarray] = {}
    read_as: dict[str, str] = {}
    try:
        with safe_open(str(path), "np") as f:
            for e in entries:
                if e.dtype == "BF16":
                    arrays[e.key], read_as[e.key] = _bfloat16(path, start, e), "bfloat16"
                else:
                    arrays[e.key] = f.get_tensor(e.key)
    except (SafetensorError, ValueError, TypeError) as err:  # what the checks above do not know of
        raise _NotSafetensors(str(err)) from None
    return arrays, read_as


def _bfloat16(path: Path, start: int, e: _Entry) -> np.ndarray:
    """A bfloat16 tensor as float32 (exact: bfloat16 is float32's upper half)."""
    raw = np.fromfile(path, dtype="<u2", count=(e.end - e.begin) // 2, offset=start + e.begin)
    return (raw.astype("<u4") << 16).view("<f4").reshape(e.shape)


def read_torch(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A `torch.save`d state_dict, read with `torch.load(weights_only=True)` (no arbitrary code),
    and the keys read as float32 because numpy has not their dtype (bfloat16)."""
    import pickle

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except OSError as err:
        raise UnreadableCheckpoint(str(path), err.strerror or str(err), True) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableCheckpoint(str(path), first, True) from None
    return _as_arrays(str(path), state)


def _as_arrays(path: str, state: object) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """What torch.load returned, as numpy arrays by name, if it is a state_dict."""
    import torch

    if not isinstance(state, Mapping):
        raise UnreadableCheckpoint(path, messages.not_a_state_dict(state), True)
    arrays, read_as = {}, {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or not isinstance(key, str):
            raise UnreadableCheckpoint(path, messages.not_a_tensor_entry(key, value), True)
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16: float32 holds it exactly
            value, read_as[key] = value.float(), "bfloat16"
        try:
            arrays[key] = value.detach().cpu().numpy()
        except TypeError:  # float8, quantized and other dtypes numpy has not
            raise UnreadableCheckpoint(path, messages.unsupported_tensor_dtype(key, str(value.dtype)), True) from None
    return arrays, read_as


# --- fitting the network ----------------------------------------------------------------------

def fit_checkpoint(graph: Graph, arrays: Mapping[str, np.ndarray], where: str = "checkpoint",
                   keymap: KeyMap | None = None, *, notes: list[str] | None = None,
                   read_as: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """`arrays` under `graph`'s weight names: renamed by `keymap`, a tied layer's own key (HF's
    `lm_head.weight`) set aside when it equals the weight it ties to, each cast to the weight's
    dtype by the dtype rule; CheckpointError (E0405) unless exactly `graph`'s weights are left,
    each with its shape and a dtype the rule takes. The casts (with those a reader made, `read_as`)
    are appended to `notes` as one warning text."""
    wanted = {w.name: w.shape for w in graph.weights}
    origin: dict[str, str] = {}
    problems: list[str] = []
    if keymap is not None:
        mapped = keymap.apply(arrays, wanted)
        arrays, origin, problems = mapped.arrays, mapped.origin, mapped.problems
    arrays, origin, tie_problems = _set_aside_ties(graph, arrays, origin)
    arrays, casts, dtype_problems = fit_dtypes(arrays, {w.name: weight_dtype(w) for w in graph.weights})
    _check(graph, arrays, where, origin, [*problems, *tie_problems, *dtype_problems], keymap.name if keymap else None)
    casts = [*(Cast(key, dtype, "float32") for key, dtype in (read_as or {}).items()), *casts]
    order = {w.name: i for i, w in enumerate(graph.weights)}  # the note lists them as the network has them
    if casts and notes is not None:
        notes.append(cast_note(where, sorted(casts, key=lambda c: order.get(c.key, len(order)))))
    return arrays


def check_weights(graph: Graph, arrays: Mapping[str, np.ndarray], where: str = "checkpoint") -> None:
    """Raise CheckpointError unless `arrays` has exactly `graph`'s weights, each with its shape."""
    fit_checkpoint(graph, arrays, where)


def weight_dtype(w: Weight) -> np.dtype:
    """The dtype of a weight in every backend: int64 for a batch norm's step counter, else float32."""
    return np.dtype(np.int64) if w.name.rsplit(".", 1)[-1] == "num_batches_tracked" else np.dtype(np.float32)


def fit_dtypes(arrays: Mapping[str, np.ndarray], dtypes: Mapping[str, np.dtype]
               ) -> tuple[dict[str, np.ndarray], list[Cast], list[str]]:
    """The dtype rule (module docstring): `arrays` with each key of `dtypes` cast to its dtype
    where the rule allows, the casts made, and a problem text for each tensor it refuses.
    Keys that `dtypes` has not are left as they are (the key check reports them)."""
    out, casts, problems = dict(arrays), [], []
    for key, want in dtypes.items():
        have = out[key].dtype if key in out else want
        if have == want:
            continue
        problem = _dtype_problem(key, out[key], want)
        if problem:
            problems.append(problem)
            continue
        out[key] = out[key].astype(want)
        casts.append(Cast(key, have.name, want.name))
    return out, casts, problems


def _dtype_problem(key: str, array: np.ndarray, want: np.dtype) -> str | None:
    """Why `array` cannot become a `want` weight, or None: same kind (float, integer) only, and
    no value a float32 cannot hold."""
    have = array.dtype
    if want.kind == "f" and have.kind == "f":
        if have.itemsize > want.itemsize and _largest(array) > float(np.finfo(want).max):
            return _beyond_range(key, have.name, want.name)
        return None
    if want.kind == "i" and have.kind in "iu":
        if array.size and have.kind == "u" and int(array.max()) > np.iinfo(want).max:
            return _beyond_range(key, have.name, want.name)
        return None
    return _wrong_kind(key, have.name, want.name)


def _largest(array: np.ndarray) -> float:
    """The largest finite magnitude in a float array (an infinity stays one in any float dtype)."""
    finite = array[np.isfinite(array)]
    return float(np.abs(finite).max()) if finite.size else 0.0


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
        return np.zeros(w.shape, dtype=weight_dtype(w))
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


# --- the texts of this module's reasons and notes (an E0107's reason, an E0405's notes) -------
# They belong in compiler/messages.py beside `unsupported_tensor_dtype`; kept here, in one
# place, until they move there.

def _too_short(size: int) -> str:
    if size == 0:
        return "the file is empty"
    return f"it has {size} byte(s), fewer than the 8 of a safetensors file's header length: it is cut short"


def _is_a_pickle(kind: str) -> str:
    what = "a PyTorch `torch.save` archive" if kind == "zip" else "a Python pickle (an older `torch.save` file)"
    return f"it is {what}, not a safetensors file; nothing in it was read"


def _header_past_end(length: int, size: int) -> str:
    return (f"it is not a safetensors file (or it is cut short): its 8-byte header length says {length} bytes, "
            f"the file has {size}")


def _header_too_large(length: int) -> str:
    return (f"it is not a safetensors file: its 8-byte header length says {length} bytes, more than "
            f"safetensors' limit of {_HEADER_LIMIT}")


def _header_not_json(err: Exception) -> str:
    why = f"{err.msg} at character {err.pos}" if isinstance(err, json.JSONDecodeError) else "it is not UTF-8"
    return f"it is not a safetensors file: its header is not JSON ({why})"


def _header_not_object(header: object) -> str:
    return f"it is not a safetensors file: its header is a JSON {type(header).__name__}, not an object of tensors"


def _bad_entry(key: str) -> str:
    return (f"the header's entry `{key}` is not a tensor (an object of a `dtype`, a `shape` and two "
            "`data_offsets`, non-negative integers)")


def _runs_past_end(key: str, end: int, data: int) -> str:
    return (f"tensor `{key}` runs past the end of the file (is it cut short?): its data ends {end} bytes "
            f"after the header, where the file has {data}")


def _size_disagrees(key: str, dtype: str, shape: tuple[int, ...], span: int) -> str:
    need = math.prod(shape) * _BYTES[dtype]
    return f"tensor `{key}` is {dtype} of shape {list(shape)}, {need} bytes, but its data offsets span {span}"


def _gap_or_overlap(key: str, begin: int, at: int) -> str:
    return (f"tensor `{key}`'s data starts {begin} bytes after the header, where the tensor before it ends "
            f"at {at}: the tensors' bytes have a gap or overlap")


def _trailing_bytes(at: int, data: int) -> str:
    return f"its tensors' data ends {at} bytes after the header, where the file has {data}: the rest is no tensor's"


def _wrong_kind(key: str, have: str, want: str) -> str:
    if want.startswith("float"):
        why = "only a float tensor is cast to a float weight (a quantized checkpoint? save its float weights)"
    else:
        why = "only an integer tensor is cast to an integer weight"
    return f"key `{key}` is {have}, the network's weight is {want}: {why}"


def _beyond_range(key: str, have: str, want: str) -> str:
    return (f"key `{key}` is {have} and holds values beyond the range of {want}, the network's weight: "
            "a cast would lose them")


def cast_note(where: str, casts: list[Cast], shown: int = 6) -> str:
    """One warning for the casts of a checkpoint, grouped by dtypes: `checkpoint `w.safetensors`:
    cast float64 to float32, the network's dtype: `fc.weight`, `fc.bias``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for c in casts:
        groups.setdefault((c.source, c.target), []).append(f"`{c.key}`")
    parts = []
    for (source, target), keys in groups.items():
        more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
        parts.append(f"cast {source} to {target}, the network's dtype: {', '.join(keys[:shown])}{more}")
    return f"checkpoint `{where}`: " + "; ".join(parts)
