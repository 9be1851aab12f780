"""Diagnostics: one record for every user-facing error, rendered in rustc's style.

    error[E0201]: unknown op `conv2`
     --> spec/bad.arch:3:12
      |
    3 |   y = x -> conv2(64, 3)
      |            ^^^^^ not an op, block, network or layer
      |
      = help: did you mean `conv2d`?

Passes collect diagnostics in a `Diagnostics` sink and keep going; they never print. Every
diagnostic is built by a function of messages.py, which owns the texts and the codes (one
code per message; `dlc explain CODE` explains each). A diagnostic about a file that is not a
spec (a checkpoint) has a span with line 0: it renders as `--> path` without an excerpt.
`CompileError` carries the diagnostics of a failed compilation out of the driver; backends
and checkpoints raise their own exceptions carrying one (`EmitError`, `CheckpointError`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

from .source import Span, SourceMap


@dataclass(frozen=True, slots=True)
class Label:
    span: Span
    text: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    primary: Label
    secondary: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None
    severity: str = "error"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (*self.primary.span.sort_key(), self.code)


@dataclass
class Diagnostics:
    """An append-only sink; duplicates (same code, span and message) are kept once."""

    items: list[Diagnostic] = field(default_factory=list)
    _seen: set[tuple[str, Span, str]] = field(default_factory=set)

    def add(self, diag: Diagnostic) -> None:
        key = (diag.code, diag.primary.span, diag.message)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(diag)

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        for d in diags:
            self.add(d)

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=Diagnostic.sort_key)

    def __len__(self) -> int:
        return len(self.items)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word`, if one is close enough."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate, as a help text, if one is close enough."""
    close = closest(word, candidates)
    return f"did you mean `{close}`?" if close else None


class CompileError(Exception):
    """Raised by the driver when a compilation produced errors (or a backend refused: E06xx);
    carries them for rendering, and its text is the rendered diagnostics, located, so that a
    caller who only prints the exception still sees file, line and column."""

    def __init__(self, diagnostics: list[Diagnostic], sources: SourceMap) -> None:
        super().__init__(render_all(diagnostics, sources))
        self.diagnostics = diagnostics
        self.sources = sources

    def render(self, color: bool = False) -> str:
        return render_all(self.diagnostics, self.sources, color)


# --- rendering --------------------------------------------------------------------------

_RED, _BLUE, _BOLD, _RESET = "\x1b[31m", "\x1b[34m", "\x1b[1m", "\x1b[0m"


def render(diag: Diagnostic, sources: SourceMap, color: bool = False) -> str:
    """Render one diagnostic with its source excerpts, rustc style."""
    paint = (lambda code, s: f"{code}{s}{_RESET}") if color else (lambda code, s: s)
    labels = [(diag.primary, True), *[(lab, False) for lab in diag.secondary]]
    width = max(len(str(lab.span.line)) for lab, _ in labels)
    pad = " " * width
    out = [paint(_BOLD, paint(_RED, f"{diag.severity}[{diag.code}]") + f": {printable(diag.message)}")]
    where = diag.primary.span if diag.primary.span.line else diag.primary.span.file
    out.append(f"{pad}{paint(_BLUE, '-->')} {where}")
    excerpts = [line for label, primary in labels for line in _excerpt(label, primary, sources, width, paint)]
    if excerpts:
        out.append(f"{pad} {paint(_BLUE, '|')}")
        out.extend(excerpts)
    if diag.notes or diag.help:
        out.append(f"{pad} {paint(_BLUE, '|')}")
    for note in diag.notes:
        out.append(f"{pad} {paint(_BLUE, '=')} note: {printable(note)}")
    if diag.help:
        out.append(f"{pad} {paint(_BLUE, '=')} help: {printable(diag.help)}")
    return "\n".join(out)


def _excerpt(label: Label, primary: bool, sources: SourceMap, width: int, paint) -> list[str]:
    span = label.span
    source = sources.get(span.file)
    bar = paint(_BLUE, "|")
    lines = []
    if not primary and span.file != "<builtin>":
        lines.append(f"{' ' * width}{paint(_BLUE, '::')} {span}")
    if source is None or span.line == 0:
        return lines + [f"{' ' * width} {bar} {label.text}"] if label.text else lines
    text = source.line(span.line).rstrip("\n")
    end_col = span.end_col if span.end_line == span.line else len(text) + 1
    shown, start, carets = _window(text, span.col - 1, max(1, end_col - span.col))
    mark = ("^" if primary else "-") * carets
    mark = paint(_RED if primary else _BLUE, mark)
    lines.append(f"{span.line:>{width}} {bar} {shown}")
    lines.append(f"{' ' * width} {bar} {' ' * start}{mark} {printable(label.text)}".rstrip())
    return lines


EXCERPT_WIDTH = 120  # characters of a source line shown around a label; a longer line is cut


def _window(text: str, start: int, length: int) -> tuple[str, int, int]:
    """The part of a source line shown for a label at `start` (0-based) of `length` characters:
    at most EXCERPT_WIDTH of them around it, cut ends marked `...`, control characters escaped
    (a spec's escape bytes never reach the terminal); with the label's start and length there."""
    if len(text) <= EXCERPT_WIDTH:
        lo, hi = 0, len(text)
    else:
        lo = 0 if start < EXCERPT_WIDTH // 2 else start - EXCERPT_WIDTH // 4
        hi = lo + EXCERPT_WIDTH
    before, inside, after = text[lo:start], text[start:min(start + length, hi)], text[start + length:hi]
    head, tail = ("..." if lo > 0 else ""), ("..." if hi < len(text) else "")
    shown_before, shown_inside = head + printable(before), printable(inside)
    return shown_before + shown_inside + printable(after) + tail, len(shown_before), max(1, len(shown_inside))


def printable(text: str) -> str:
    """`text` with control characters written as escapes (`\\x1b`), a tab as one space."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else " " if c == "\t" else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def render_all(diags: list[Diagnostic], sources: SourceMap, color: bool = False) -> str:
    """All diagnostics, sorted by position, with a closing count line."""
    parts = [render(d, sources, color) for d in sorted(diags, key=Diagnostic.sort_key)]
    errors = sum(1 for d in diags if d.severity == "error")
    if errors:
        noun = "error" if errors == 1 else "errors"
        parts.append(f"{'error' if not color else _BOLD + _RED + 'error' + _RESET}: aborting due to {errors} previous {noun}")
    return "\n\n".join(parts) + "\n"
