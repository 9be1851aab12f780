"""Read a `.arch` file and, transitively, the files it imports.

Imports are looked up relative to the importing file, then in the standard library
(`import "std/residual.arch"` finds `spec/std/residual.arch`, shipped as `dlc.stdlib`).

A spec may come from someone else, so an import reads only what a spec may read: a relative
path to a `.arch` file that stays inside the root file's directory (or, for `std/...`, inside
the standard library), a regular file (no device, FIFO or directory), at most
limits.MAX_SOURCE_BYTES long, and at most limits.MAX_FILES files in all. Anything else is E0109,
and nothing of the refused file is read, so none of it can be shown in a diagnostic.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .. import limits, messages
from ..diagnostics import Diagnostics
from ..source import NO_SPAN, SourceMap, Span, display_path
from . import ast
from .parse import parse


def stdlib_dir() -> Path:
    import dlc.stdlib
    return Path(dlc.stdlib.__file__).parent


@dataclass(frozen=True)
class Program:
    """The root file and every file it reaches through imports, keyed by display path."""

    root: str
    modules: dict[str, ast.Module]
    imports: dict[str, tuple[tuple[ast.Import, str], ...]]  # module -> (import statement, target module)


def load_program(path: Path, sources: SourceMap, diags: Diagnostics, text: str | None = None) -> Program | None:
    """Parse `path` and its imports; None if the root file itself cannot be read or parsed."""
    loader = _Loader(sources, diags, path.resolve().parent)
    root = loader.load(path, NO_SPAN, [], text)
    if root is None:
        return None
    return Program(root, loader.modules, loader.imports)


class _Loader:
    def __init__(self, sources: SourceMap, diags: Diagnostics, home: Path) -> None:
        self.home = home  # imports stay below the root file's directory
        self.sources = sources
        self.diags = diags
        self.modules: dict[str, ast.Module] = {}
        self.imports: dict[str, tuple[tuple[ast.Import, str], ...]] = {}
        self._by_real: dict[Path, str] = {}

    def load(self, path: Path, span: Span, stack: list[str], text: str | None = None) -> str | None:
        real = path.resolve()
        if real in self._by_real:
            return self._by_real[real]
        name = display_path(path)
        if text is None:
            try:
                text = read_source(path)
            except (OSError, UnicodeDecodeError, SourceError) as err:
                reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                if span is NO_SPAN:
                    self.diags.add(messages.cannot_read(Span(name, 0, 0, 0, 0), name, reason, imported=False))
                else:
                    self.diags.add(messages.cannot_read(span, name, reason))
                return None
        self.sources.add(name, text)
        module = parse(text, name, self.diags)
        if module is None:
            return None
        self._by_real[real] = name
        self.modules[name] = module
        self.imports[name] = ()
        self.imports[name] = tuple(self._imports(module, path, [*stack, name]))
        return name

    def _imports(self, module: ast.Module, path: Path, stack: list[str]):
        for item in module.items:
            if not isinstance(item, ast.Import):
                continue
            refused = self._refused(item.path, path.parent)
            if refused is not None:
                self.diags.add(messages.import_refused(item.span, item.path, refused))
                continue
            target, searched = _find(item.path, path.parent)
            if target is None:
                self.diags.add(messages.import_not_found(item.span, item.path, searched))
                continue
            shown = display_path(target)
            if shown in stack:
                self.diags.add(messages.import_cycle(item.span, [*stack[stack.index(shown):], shown]))
                continue
            if target.resolve() not in self._by_real and len(self._by_real) >= limits.MAX_FILES:
                self.diags.add(messages.import_refused(item.span, item.path, f"a program reads at most "
                                                       f"{limits.MAX_FILES} files, and this would be one more"))
                continue
            outside = self._outside(item.path, target)
            if outside is not None:
                self.diags.add(messages.import_refused(item.span, item.path, outside))
                continue
            loaded = self.load(target, item.span, stack)
            if loaded is not None:
                yield item, loaded

    def _refused(self, rel: str, here: Path) -> str | None:
        """Why an import's path is not one a spec may name, from the text alone; None if it may."""
        if not rel.endswith(".arch"):
            return "only `.arch` files can be imported"
        if Path(rel).is_absolute() or rel.startswith("~"):
            return "an import is a path relative to the importing file (or `std/...`), not an absolute one"
        return None

    def _outside(self, rel: str, target: Path) -> str | None:
        """Why the file an import found lies where a spec may not read; None if it may be read."""
        real = target.resolve()
        if real.is_relative_to(self.home) or (rel.startswith("std/") and real.is_relative_to(stdlib_dir().resolve())):
            return None
        return (f"it leads outside `{display_path(self.home)}`, the directory of the file being compiled "
                "(and outside the standard library)")


class SourceError(Exception):
    """A spec file that is not a regular file or is too long: the text is the reason."""


def read_source(path: Path) -> str:
    """The text of a spec file: a regular file of at most MAX_SOURCE_BYTES, read without blocking
    (a FIFO or a device is refused before it is opened, `/dev/zero` never read)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else \
            "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "a socket"
        raise SourceError(f"it is {kind}, not a regular file")
    with open(path, "rb") as f:
        data = f.read(limits.MAX_SOURCE_BYTES + 1)
    if len(data) > limits.MAX_SOURCE_BYTES:
        raise SourceError(f"it is longer than {limits.MAX_SOURCE_BYTES // 1024:,} KiB, the most a spec file may be")
    return data.decode("utf-8")


def _find(rel: str, here: Path) -> tuple[Path | None, list[str]]:
    candidates = [here / rel]
    if rel.startswith("std/"):
        candidates.append(stdlib_dir() / rel[len("std/"):])
    for c in candidates:
        if c.exists():  # not is_file(): a FIFO or a device is found, then refused by read_source
            return c, []
    return None, [display_path(c.parent) for c in candidates]
