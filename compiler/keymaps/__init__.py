"""Key maps: how another implementation's `state_dict` keys become a network's weight names.

A key map is data, one TOML file per source layout: the ones shipped here (`torchvision.toml`,
`huggingface-gpt2.toml`, `huggingface-bert.toml`) or a user's, passed by its path
(`--weights-from my-map.toml`). It holds, all optional:

    source = "huggingface"           # the name `--weights-from huggingface` selects it by
    networks = ["GPT2"]              # the networks it is for (without: any network)
    drop = ['h\\.\\d+\\.attn\\.bias']    # source keys that are no weights (buffers, other heads)

    [[rename]]                       # the first rule whose `from` matches the whole key applies
    from = 'h\\.(\\d+)\\.attn\\.c_attn\\.weight'
    transpose = true                 # swap the dims of a 2-D tensor (Conv1D stores in x out)
    split = 0                        # cut along this dim into len(to) equal parts, in order
    to = ['h.{1}.attn.q_proj.weight', 'h.{1}.attn.k_proj.weight', 'h.{1}.attn.v_proj.weight']

    [[fill]]                         # a weight that no source key became gets this constant
    key = '.*\\.num_batches_tracked'
    value = 0
    dtype = "int64"

In `to`, `{1}` or `{name}` is a capture of `from`, and `{1+1}` or `{k-1}` shifts an integer
capture. A key that no rule matches keeps its name; transposing comes before splitting. The
result is then checked like any checkpoint (compiler/checkpoint.py: E0405, every key that does
not fit, named with the source key it came from). A map that cannot be read is E0108.
"""
from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import messages
from ..checkpoint import CheckpointError
from ..source import SourceMap, Span

DIR = Path(__file__).parent
_FIELDS = {"source", "networks", "description", "drop", "rename", "fill"}
_RENAME_FIELDS = {"from", "to", "transpose", "split"}
_FILL_FIELDS = {"key", "value", "dtype"}
_DTYPES = ("float32", "float64", "float16", "int64", "int32", "bool")
_CAPTURE = re.compile(r"\{(\w+)([+-]\d+)?\}")


class KeyMapError(CheckpointError):
    """A key map that cannot be read (E0108); `sources` holds its text, so the diagnostic can
    quote the offending line."""


class KeyMapNotFound(LookupError):
    """`--weights-from NAME` names no shipped key map, or none for the network: a usage error."""


@dataclass(frozen=True)
class Rename:
    pattern: re.Pattern[str]
    targets: tuple[str, ...]  # one template, or one per part of a split
    transpose: bool
    split: int | None


@dataclass(frozen=True)
class Fill:
    pattern: re.Pattern[str]
    value: float
    dtype: str


@dataclass
class Mapped:
    """A checkpoint under the network's names, as `KeyMap.apply` builds it: `arrays`; `origin`
    says which source key (and transform) each key a rule made came from, `problems` the source
    keys a rule could not take."""

    arrays: dict[str, np.ndarray]
    origin: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    source_key: dict[str, str] = field(default_factory=dict)  # each key's source key


@dataclass(frozen=True)
class KeyMap:
    name: str  # a shipped map's name (`huggingface-gpt2`), or the path of a user's
    source: str
    networks: tuple[str, ...]
    drop: tuple[re.Pattern[str], ...]
    renames: tuple[Rename, ...]
    fills: tuple[Fill, ...]

    def apply(self, arrays: Mapping[str, np.ndarray], wanted: Mapping[str, tuple[int, ...]]) -> Mapped:
        """`arrays` renamed and transformed; `wanted` (the network's weights and shapes) is what
        the fill rules complete."""
        out = Mapped({})
        for key, array in arrays.items():
            if not any(p.fullmatch(key) for p in self.drop):
                self._rename(key, array, out)
        for name, shape in wanted.items():
            fill = next((f for f in self.fills if name not in out.arrays and f.pattern.fullmatch(name)), None)
            if fill is not None:
                out.arrays[name] = np.full(shape, fill.value, dtype=fill.dtype)
                out.origin[name] = messages.filled_by_keymap(fill.value)
        return out

    def _rename(self, key: str, array: np.ndarray, out: Mapped) -> None:
        rule, match = next(((r, m) for r in self.renames if (m := r.pattern.fullmatch(key))), (None, None))
        if rule is None:
            _put(out, key, array, key, None)
            return
        try:
            names = [_expand(t, match) for t in rule.targets]
        except ValueError as err:  # a shift of a capture that is not a number
            out.problems.append(messages.cannot_shift(key, str(err)))
            return
        parts = _transform(rule, key, array, out.problems)
        if parts is None:
            return
        for i, (name, part) in enumerate(zip(names, parts, strict=True)):
            how = messages.mapped_from(key, rule.transpose, (i + 1, len(names), rule.split) if len(names) > 1 else None)
            _put(out, name, part, key, how)


def _put(out: Mapped, name: str, array: np.ndarray, key: str, how: str | None) -> None:
    """`array`, from source key `key`, as `name` (`how`: what a rule did; None: no rule matched)."""
    if name in out.arrays:
        out.problems.append(messages.keymap_collision(out.source_key[name], key, name))
        return
    out.arrays[name] = array
    out.source_key[name] = key
    if how is not None:
        out.origin[name] = how


def _transform(rule: Rename, key: str, array: np.ndarray, problems: list[str]) -> list[np.ndarray] | None:
    """The parts `rule` makes of `array` (one without a split); None after noting why it cannot."""
    if rule.transpose:
        if array.ndim != 2:
            problems.append(messages.cannot_transpose(key, tuple(array.shape)))
            return None
        array = array.T
    if rule.split is None:
        return [_contiguous(array)]
    n, dim = len(rule.targets), rule.split
    if not -array.ndim <= dim < array.ndim or array.shape[dim] % n:
        problems.append(messages.cannot_split(key, tuple(array.shape), dim, n))
        return None
    return [_contiguous(part) for part in np.split(array, n, axis=dim)]


def _contiguous(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array, as the backends' writers want; 0-d stays 0-d (np.ascontiguousarray's do not)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


def _expand(template: str, match: re.Match[str]) -> str:
    """`template` with its captures filled in; ValueError(capture) for a shift of a non-number."""
    def capture(m: re.Match[str]) -> str:
        value = match.group(int(m[1]) if m[1].isdigit() else m[1]) or ""
        if not m[2]:
            return value
        if not value.isdigit():
            raise ValueError(value)
        return str(int(value) + int(m[2]))
    return _CAPTURE.sub(capture, template)


# --- finding and reading maps -------------------------------------------------------------

@functools.cache
def shipped() -> dict[str, KeyMap]:
    """The key maps that come with dlc, by name (their file's stem)."""
    return {p.stem: read_keymap(p, p.stem) for p in sorted(DIR.glob("*.toml"))}


def is_keymap_path(name: str) -> bool:
    """Whether `--weights-from name` names a key map file rather than a shipped map or a source."""
    return name.endswith(".toml") or "/" in name


def find_keymap(name: str, network: str) -> KeyMap:
    """The key map `--weights-from name` means for `network`: a path (`*.toml`, or anything with a
    `/`) is read; a shipped map's name is that map; a source (`huggingface`) is its map whose
    `networks` hold `network`, or its only map without `networks`. KeyMapNotFound otherwise."""
    if is_keymap_path(name):
        return read_keymap(Path(name))
    maps = shipped()
    if name in maps:
        return maps[name]
    of_source = [m for m in maps.values() if m.source == name]
    if not of_source:
        raise KeyMapNotFound(messages.unknown_keymap(name, sorted({m.source for m in maps.values()} | set(maps))))
    fitting = [m for m in of_source if network in m.networks] or [m for m in of_source if not m.networks]
    if len(fitting) != 1:
        raise KeyMapNotFound(messages.no_keymap_for(name, network, {m.name: m.networks for m in of_source}))
    return fitting[0]


def read_keymap(path: Path, name: str | None = None) -> KeyMap:
    """Parse and check a key map file; KeyMapError (E0108) if it cannot be read or is malformed."""
    shown = name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise _error(str(path), "", reason) from None
    try:
        return _build(shown, tomllib.loads(text))
    except tomllib.TOMLDecodeError as err:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(err))
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(err))
        raise _error(str(path), text, reason, (int(where[1]), int(where[2])) if where else None) from None
    except _Invalid as err:
        raise _error(str(path), text, err.reason, _locate(text, err.needle), len(err.needle or " ")) from None


class _Invalid(Exception):
    def __init__(self, reason: str, needle: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.needle = reason, needle


def _error(path: str, text: str, reason: str, at: tuple[int, int] | None = None, width: int = 1) -> KeyMapError:
    line, col = at or (0, 0)
    sources = SourceMap()
    sources.add(path, text)
    return KeyMapError(messages.cannot_read_keymap(Span(path, line, col, line, col + width), reason), sources)


def _locate(text: str, needle: str | None) -> tuple[int, int] | None:
    """Line and column of the first occurrence of `needle` in the file, where it can be found."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle and needle in line:
            return number, line.index(needle) + 1
    return None


def _build(name: str, data: dict[str, Any]) -> KeyMap:
    _known_fields(data, _FIELDS, "the key map")
    networks = data.get("networks", [])
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        raise _Invalid(messages.keymap_field_type("networks", "a list of network names"), "networks")
    return KeyMap(name, _string(data.get("source", name), "source"), tuple(networks),
                  tuple(_pattern(p) for p in _list(data.get("drop", []), "drop")),
                  tuple(_rename(r) for r in _tables(data.get("rename", []), "rename")),
                  tuple(_fill(f) for f in _tables(data.get("fill", []), "fill")))


def _rename(rule: dict[str, Any]) -> Rename:
    _known_fields(rule, _RENAME_FIELDS, "a [[rename]] rule")
    if "from" not in rule or "to" not in rule:
        raise _Invalid(messages.keymap_missing_field("[[rename]]", "from" if "from" not in rule else "to"),
                       str(rule.get("from") or rule.get("to") or "[[rename]]"))
    pattern = _pattern(rule["from"])
    split, transpose, to = rule.get("split"), rule.get("transpose", False), rule["to"]
    if split is not None and (not isinstance(split, int) or isinstance(split, bool)):
        raise _Invalid(messages.keymap_field_type("split", "a dimension (an integer)"), "split")
    if not isinstance(transpose, bool):
        raise _Invalid(messages.keymap_field_type("transpose", "true or false"), "transpose")
    targets = (to,) if isinstance(to, str) else tuple(_list(to, "to"))
    if (split is None) != isinstance(to, str) or (split is not None and len(targets) < 2):
        raise _Invalid(messages.keymap_split_targets(pattern.pattern, split, len(targets)), pattern.pattern)
    for target in targets:
        _check_template(target, pattern)
    return Rename(pattern, targets, transpose, split)


def _fill(rule: dict[str, Any]) -> Fill:
    _known_fields(rule, _FILL_FIELDS, "a [[fill]] rule")
    if "key" not in rule or "value" not in rule:
        raise _Invalid(messages.keymap_missing_field("[[fill]]", "key" if "key" not in rule else "value"),
                       rule.get("key") or "[[fill]]")
    value, dtype = rule["value"], rule.get("dtype", "float32")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _Invalid(messages.keymap_field_type("value", "a number"), "value")
    if dtype not in _DTYPES:
        raise _Invalid(messages.keymap_field_type("dtype", " or ".join(f"`{d}`" for d in _DTYPES)), str(dtype))
    return Fill(_pattern(rule["key"]), value, dtype)


def _check_template(target: str, pattern: re.Pattern[str]) -> None:
    for m in _CAPTURE.finditer(target):
        group = int(m[1]) if m[1].isdigit() else m[1]
        known = 1 <= group <= pattern.groups if isinstance(group, int) else group in pattern.groupindex
        if not known:
            raise _Invalid(messages.keymap_unknown_capture(target, m[0], pattern.pattern), target)
    if "{" in _CAPTURE.sub("", target) or "}" in _CAPTURE.sub("", target):
        raise _Invalid(messages.keymap_bad_template(target), target)


def _pattern(text: Any) -> re.Pattern[str]:
    pattern = _string(text, "a pattern")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise _Invalid(messages.keymap_bad_pattern(pattern, str(err)), pattern) from None


def _known_fields(table: dict[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise _Invalid(messages.keymap_unknown_field(unknown[0], what, sorted(known)), unknown[0])


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(messages.keymap_field_type(what, "a string"), str(value))
    return value


def _list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(messages.keymap_field_type(what, "a list of strings"), what)
    return value


def _tables(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _Invalid(messages.keymap_field_type(what, f"[[{what}]] tables"), what)
    return value
