"""`dlc explain`: every code messages.py can produce has an explanation (compiler/explain/CODE.md)
and every explanation a code; each explanation's erroneous example really produces exactly its
code, through the command its ```console block names (the backend's own function for E06xx),
and its fixed example compiles cleanly."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from dlc.cli import _parser
from dlc.compiler import explain, messages
from dlc.compiler.checkpoint import CheckpointError, load_weights
from dlc.compiler.diagnostics import CompileError
from dlc.compiler.errors import EmitError
from dlc.compiler.pipeline import compile_file, default_graph

MESSAGES = (ROOT / "compiler" / "messages.py").read_text()
USES = re.findall(r'Diagnostic\(\s*"(E\d{4})"', MESSAGES)  # every code, as often as a message uses it
CODES = sorted(set(USES))


def test_each_code_belongs_to_one_message():
    assert len(CODES) > 50
    assert sorted(USES) == CODES, "a code used by two messages"
    assert not set(messages.RETIRED) & set(CODES), "a retired code given to a message"


def test_every_code_has_an_explanation_and_every_explanation_a_code():
    assert explain.codes() == CODES


def test_diagnostics_are_built_only_in_messages():
    """No other module builds a Diagnostic or prints a code itself."""
    allowed = {ROOT / "compiler" / "messages.py", ROOT / "compiler" / "diagnostics.py"}
    offenders = [str(p.relative_to(ROOT)) for folder in ("compiler", "dlc", "runtime") for p in (ROOT / folder).rglob("*.py")
                 if p not in allowed and re.search(r"\bDiagnostic\(|error\[E\d", p.read_text())]
    assert offenders == []


@pytest.mark.parametrize("code", CODES)
def test_explanation_has_a_title_and_both_examples(code):
    text = explain.explanation(code)
    assert text.startswith(f"# {code}: ") and explain.title(code)
    assert len(text.split("\n\n")) >= 4, "a long explanation in plain words, then the examples"
    blocks = explain.examples(code)
    assert sorted(blocks) == ["erroneous", "fixed"]
    for example in blocks.values():
        assert example[0].kind == "arch"
        assert {b.kind for b in example} <= {"arch", "checkpoint", "keymap", "console"}


@pytest.mark.parametrize("code", CODES)
def test_erroneous_example_produces_exactly_its_code(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    codes = run_example(explain.examples(code)["erroneous"])
    assert codes and set(codes) == {code}, codes


@pytest.mark.parametrize("code", CODES)
def test_fixed_example_compiles_cleanly(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_example(explain.examples(code)["fixed"]) == []


def run_example(blocks: list[explain.Block]) -> list[str]:
    """Write the example's files here and run its command in process; the codes it reports."""
    command = "dlc check example.arch"
    for i, block in enumerate(blocks):
        name = block.name or ("example.arch" if i == 0 else None)
        if block.kind in ("arch", "keymap"):
            Path(name).write_text(block.text)
        elif block.kind == "checkpoint":
            _write_checkpoint(Path(name), block.text)
        else:
            (command,) = [line.removeprefix("$ ") for line in block.text.splitlines() if line.startswith("$ ")]
    argv = command.split()
    assert argv[0] == "dlc"
    args = _parser().parse_args(argv[1:])
    return {"check": _check, "summary": _summary, "emit": _emit_torch, "export": _export_onnx,
            "compile": _import_into_tvm}[args.command](args)


def _write_checkpoint(path: Path, text: str) -> None:
    """`name: [d0, d1]` lines as a safetensors file of zeros."""
    from safetensors.numpy import save_file

    arrays = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split(":")
            arrays[key.strip()] = np.zeros([int(d) for d in re.findall(r"\d+", shape)], np.float32)
    save_file(arrays, str(path))


def _check(args) -> list[str]:
    return [d.code for path in args.files for d in compile_file(path).diagnostics]


def _summary(args) -> list[str]:
    result = compile_file(args.file, args.model)
    if not result.ok:
        return [d.code for d in result.diagnostics]
    try:
        default_graph(result, args.model)
    except CompileError as err:
        return [d.code for d in err.diagnostics]
    return []


def _emit_torch(args) -> list[str]:
    from dlc.compiler.emit.torch import emit_torch

    result = compile_file(args.files[0])
    assert result.ok, result.diagnostics
    try:
        emit_torch(result)
    except EmitError as err:
        return [err.diag.code]
    return []


def _weights(args, graph):
    return load_weights(graph, args.weights, args.weights_from, args.torch_load, args.seed)


def _export_onnx(args) -> list[str]:
    from dlc.compiler.emit.onnx import emit_onnx

    result = compile_file(args.file, args.model)
    assert result.ok, result.diagnostics
    try:
        for graph in result.graphs.values():
            emit_onnx(graph, _weights(args, graph))
    except (CheckpointError, EmitError) as err:
        return [err.diag.code]
    return []


def _import_into_tvm(args) -> list[str]:
    from dlc.compiler.backends.tvm.build import import_graph

    result = compile_file(args.file, args.model)
    assert result.ok, result.diagnostics
    graph = default_graph(result, args.model)
    try:
        import_graph(graph, _weights(args, graph))
    except (CheckpointError, EmitError) as err:
        return [err.diag.code]
    return []


def test_dlc_explain_prints_the_explanation():
    proc = _dlc("explain", "e401")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == explain.explanation("E0401")


def test_dlc_explain_alone_lists_every_code_with_its_title():
    proc = _dlc("explain")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == CODES
    assert f"E0401  {explain.title('E0401')}" in lines


def test_an_unknown_code_is_a_usage_error_with_the_closest_codes():
    proc = _dlc("explain", "E0409")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "error: no explanation for `E0409`; did you mean E0407, E0406, E0405?\n"
    retired = _dlc("explain", "E0402")  # retired: never explained as something else
    assert retired.returncode == 2 and "`E0402` is retired" in retired.stderr


def test_closest_codes_are_of_the_same_phase_first():
    assert explain.closest("E0229") == ["E0228", "E0227", "E0226"]  # an unused code: its neighbours
    assert explain.closest("e1") == ["E0001", "E0002", "E0003"]


def _dlc(*args):
    return subprocess.run([sys.executable, "-m", "dlc", *args], capture_output=True, text=True, cwd=ROOT)
