"""Read a `.arch` file and, transitively, the files it imports.

Imports are looked up relative to the importing file, then in the standard library
(`import "std/residual.arch"` finds `spec/std/residual.arch`, shipped as `dlc.stdlib`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import messages
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
    loader = _Loader(sources, diags)
    root = loader.load(path, NO_SPAN, [], text)
    if root is None:
        return None
    return Program(root, loader.modules, loader.imports)


class _Loader:
    def __init__(self, sources: SourceMap, diags: Diagnostics) -> None:
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
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
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
            target, searched = _find(item.path, path.parent)
            if target is None:
                self.diags.add(messages.import_not_found(item.span, item.path, searched))
                continue
            shown = display_path(target)
            if shown in stack:
                self.diags.add(messages.import_cycle(item.span, [*stack[stack.index(shown):], shown]))
                continue
            loaded = self.load(target, item.span, stack)
            if loaded is not None:
                yield item, loaded


def _find(rel: str, here: Path) -> tuple[Path | None, list[str]]:
    candidates = [here / rel]
    if rel.startswith("std/"):
        candidates.append(stdlib_dir() / rel[len("std/"):])
    for c in candidates:
        if c.is_file():
            return c, []
    return None, [display_path(c.parent) for c in candidates]
