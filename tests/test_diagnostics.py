"""Golden tests of rendered diagnostics: each bad spec in tests/diagnostics/ sits beside the
exact text `dlc check` prints for it (`.err`). Regenerate with DLC_UPDATE_GOLDEN=1."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, UPDATE_GOLDEN
from dlc.compiler.diagnostics import render_all
from dlc.compiler.pipeline import compile_file

CASES = sorted((ROOT / "tests" / "diagnostics").glob("*.arch"))


@pytest.mark.parametrize("spec", CASES, ids=[c.stem for c in CASES])
def test_rendered_diagnostics_match_golden(spec: Path):
    result = compile_file(spec.relative_to(ROOT))
    assert not result.ok, "a bad spec must produce errors"
    rendered = render_all(list(result.diagnostics), result.sources)
    golden = spec.with_suffix(".err")
    if UPDATE_GOLDEN:
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_several_independent_errors_in_one_run():
    result = compile_file("tests/diagnostics/several_errors.arch")
    assert [d.code for d in result.diagnostics] == ["E0201", "E0401", "E0220"]


def test_cli_exit_status_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "dlc", "check", "tests/diagnostics/shape_mismatch.arch"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert "--> tests/diagnostics/shape_mismatch.arch:5:24" in proc.stderr
    assert "(B, 64, 32, 32)" in proc.stderr and "(B, 64, 16, 16)" in proc.stderr


def test_missing_file_is_a_diagnostic_not_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "dlc", "check", "no/such/file.arch"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert "error[E0101]: cannot read `no/such/file.arch`" in proc.stderr
    assert "Traceback" not in proc.stderr
