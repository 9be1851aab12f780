"""The op registry is complete: every op's one entry holds its shape rule, doc, category and each
backend's form, and the vocabularies those forms are written in keep the front end light.

What each form computes is checked elsewhere, per op: tests/test_torch_ops.py (PyTorch forms
against the shape rules and weights), tests/test_onnx_ops_dense.py and test_onnx_ops_seq.py
(ONNX forms against PyTorch, through ONNX Runtime).
"""
from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from dlc.compiler.docs import CATEGORIES
from dlc.compiler.ops import OPS

# Ops the compiler inserts itself (`expect`, a block input's declared type; `parameter`, a `param`
# statement's tensor). The PyTorch emitter writes blocks from the AST and never meets them, so they
# have no PyTorch form.
INTERNAL = "internal"


def _headings() -> set[str]:
    return {line[3:] for line in (ROOT / "docs" / "ops.md").read_text().splitlines() if line.startswith("## ")}


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_has_every_form_doc_and_category(name):
    op = OPS[name]
    assert op.name == name
    assert op.doc.strip() and op.rule.strip()
    assert callable(op.infer) and callable(op.onnx)
    if op.category == INTERNAL:
        assert op.torch is None, f"{name} is internal: the PyTorch emitter never sees it"
        return
    assert op.torch is not None, f"{name} has no PyTorch form"
    assert callable(op.torch.call)
    assert op.category in CATEGORIES, f"{name}: category {op.category!r} has no section in docs/ops.md"
    assert op.category.capitalize() in _headings()


def test_internal_ops_are_exempt_by_name_only():
    assert {name for name, op in OPS.items() if op.category == INTERNAL} == {"expect", "parameter"}
    assert INTERNAL not in CATEGORIES


def test_every_docs_section_has_an_op():
    assert {op.category for op in OPS.values()} - {INTERNAL} == set(CATEGORIES)


def test_an_entry_is_frozen_with_its_forms():
    with pytest.raises(dataclasses.FrozenInstanceError):
        OPS["relu"].onnx = OPS["tanh"].onnx


def test_weight_free_follows_the_weights_rule():
    assert OPS["relu"].weight_free and OPS["concat"].weight_free and OPS["sinusoidal_pe"].weight_free
    assert not OPS["conv2d"].weight_free and not OPS["layernorm"].weight_free and not OPS["lstm"].weight_free


def test_onnx_dtype_codes_are_onnx_s():
    """context.py cannot import onnx, so it spells TensorProto's codes out; they must be onnx's."""
    from onnx import TensorProto

    from dlc.compiler.emit.onnx.context import ONNX_DTYPES

    assert ONNX_DTYPES == {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "f16": TensorProto.FLOAT16,
                           "bf16": TensorProto.BFLOAT16, "i64": TensorProto.INT64, "i32": TensorProto.INT32,
                           "u8": TensorProto.UINT8, "bool": TensorProto.BOOL}


# --- import cost and layering ----------------------------------------------------------------------

def _modules_after(code: str, selection: str) -> list[str]:
    """Run `code` in a fresh interpreter; the sorted names in sys.modules that match `selection`."""
    script = f"import sys\n{textwrap.dedent(code)}\nprint(sorted(m for m in sys.modules if {selection}))"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def test_the_front_end_loads_no_backend_library():
    """`dlc check` imports the pipeline, and with it the op table and every op's forms."""
    heavy = ("numpy", "onnx", "jinja2", "black", "torch")
    code = """
        import dlc.compiler.pipeline
        from dlc.compiler.ops import OPS
        assert OPS["conv2d"].onnx is not None and OPS["conv2d"].torch is not None
    """
    assert _modules_after(code, f"m.split('.')[0] in {heavy!r}") == []


def test_the_onnx_emitter_loads_nothing_of_the_pytorch_emitter(tmp_path):
    """Exporting ONNX (here: masked convolutions, causal attention over a symbolic length, a
    sinusoidal table and a GRU, the converters that import numpy or onnx themselves) loads neither
    torch, Jinja2 nor black, and of the PyTorch emitter only forms.py, which the op table needs."""
    spec = tmp_path / "t.arch"
    spec.write_text("network N {\n  input x: f32[B, T=6, 8]\n"
                    "  output y = x -> sinusoidal_pe -> attn: mha(2, causal=true) -> rnn: gru(4)\n}\n")
    code = f"""
        from dlc.compiler.checkpoint import random_weights
        from dlc.compiler.emit.onnx import emit_onnx
        from dlc.compiler.pipeline import compile_file
        for path in ("spec/pixelcnn.arch", {str(spec)!r}):
            for graph in compile_file(path).graphs.values():
                assert emit_onnx(graph, random_weights(graph)).graph.node
        assert "dlc.compiler.emit.onnx.model" in sys.modules and "onnx" in sys.modules
    """
    selection = ("m.split('.')[0] in ('jinja2', 'black', 'torch') or "
                 "m.startswith('dlc.compiler.emit.torch.') and m != 'dlc.compiler.emit.torch.forms'")
    assert _modules_after(code, selection) == []
