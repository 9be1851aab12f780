"""Shared test helpers: the repository root, and compiling spec text in a temporary file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlc.compiler.pipeline import Compilation, compile_file

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    """Diagnostics print paths relative to the working directory; run every test from the root."""
    monkeypatch.chdir(ROOT)


def compile_text(text: str, tmp_path: Path, name: str = "t.arch", model: str | None = None) -> Compilation:
    path = tmp_path / name
    path.write_text(text)
    return compile_file(path, model)


def error_codes(result: Compilation) -> list[str]:
    return [d.code for d in result.diagnostics]


UPDATE_GOLDEN = os.environ.get("DLC_UPDATE_GOLDEN") == "1"
