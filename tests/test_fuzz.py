"""The grammar-aware fuzzer (compiler/fuzz.py): a short fixed-seed campaign ends with no defect,
the classifier catches planted defects, and each defect class the long campaign
(benchmarks/fuzz.py) found stays fixed (a minimal spec each, at the end)."""
from __future__ import annotations

import collections
import os
import signal
import time

import pytest
import torch

from dlc.compiler import fuzz
from dlc.compiler.diagnostics import CompileError
from dlc.compiler.emit.torch import torch_source
from dlc.compiler.pipeline import compile_file

SEED = 20


# --- the campaign -------------------------------------------------------------------------------

def test_a_short_campaign_finds_no_defect():
    outcomes = dict(fuzz.run_campaign(SEED, count=48, jobs=2))
    counts = collections.Counter(o.kind for o in outcomes.values())
    defects = {case.name: (o.kind, o.detail, o.where) for case, o in outcomes.items() if o.kind in fuzz.DEFECTS}
    assert defects == {}
    assert sum(counts.values()) == 48
    assert counts["ok"] >= 3 and counts["diagnostic"] >= 3, counts  # the mutations are not all rejected


def test_cases_are_a_function_of_seed_and_index():
    a, b = fuzz.make_case(7, 3), fuzz.make_case(7, 3)
    assert a == b and a.mutations
    assert {fuzz.make_case(7, i).text for i in range(10)} != {fuzz.make_case(8, i).text for i in range(10)}
    assert a.text != dict(fuzz.corpus())[a.base]


def test_the_tokens_are_the_grammars():
    tokens = fuzz.tokenize("network N {\n  input x: f32[B, 4]  # a comment\n  output y = x -> linear(4)\n}\n")
    assert [t.type for t in tokens][:4] == ["NETWORK", "NAME", "LBRACE", "INPUT"]
    assert [t.value for t in tokens if t.type == "INT"] == ["4", "4"]
    assert fuzz.tokenize("network N { $ }") is None


def test_every_zoo_spec_passes_the_oracle():
    for name, text in fuzz.corpus()[:8]:  # the rest run in the campaigns; these are the small ones
        assert fuzz.check_spec(text).kind == "ok", name


# --- planted defects -----------------------------------------------------------------------------

def raises(text: str) -> fuzz.Outcome:
    return {}["missing"]


def sleeps(text: str) -> fuzz.Outcome:
    time.sleep(30)
    return fuzz.Outcome("ok")


def allocates(text: str) -> fuzz.Outcome:
    return fuzz.Outcome("ok", str(len(bytearray(2 << 30))))


def segfaults(text: str) -> fuzz.Outcome:
    os.kill(os.getpid(), signal.SIGSEGV)
    return fuzz.Outcome("ok")


def test_planted_defects_are_caught():
    checks = {"raises": raises, "sleeps": sleeps, "allocates": allocates, "segfaults": segfaults}
    started = time.monotonic()
    got = {}
    for name, check in checks.items():
        [(_, outcome)] = fuzz.run_texts([(name, "")], check, seconds=3, memory=1 << 30)
        got[name] = outcome
    assert time.monotonic() - started < 25
    assert got["raises"].kind == "traceback" and got["raises"].error == "KeyError"
    assert "test_fuzz.py" in got["raises"].where and "in raises" in got["raises"].where
    assert got["sleeps"].kind == "hang"
    assert got["allocates"].kind == "memory"
    assert got["segfaults"].kind == "crash"


def test_an_error_without_a_location_is_a_defect(tmp_path):
    from dlc.compiler import messages
    from dlc.compiler.source import NO_SPAN, Span

    located = messages.emit_unsupported(Span("n.arch", 3, 5, 3, 9), "x")
    nowhere = messages.emit_unsupported(NO_SPAN, "x")
    assert fuzz.classify_errors([located]).kind == "diagnostic"
    assert fuzz.classify_errors([located, nowhere]).kind == "unlocated" and "unlocated" in fuzz.DEFECTS
    assert fuzz.check_spec("network N {\n  input x: f32[B, 4]\n  output y = x -> nope\n}\n").kind == "diagnostic"


def test_findings_are_told_apart_by_outcome_type_and_frame():
    a = fuzz.Outcome("traceback", "KeyError: 'a'", "compiler/x.py:3 in f", "KeyError")
    b = fuzz.Outcome("traceback", "KeyError: 'b'", "compiler/x.py:3 in f", "KeyError")
    c = fuzz.Outcome("traceback", "KeyError: 'a'", "compiler/x.py:9 in g", "KeyError")
    assert a.key() == b.key() != c.key()


# --- regressions: defects the long campaign found ------------------------------------------------

def _module(tmp_path, text: str):
    import dlc

    path = tmp_path / "r.arch"
    path.write_text(text)
    assert fuzz.check_spec(text).kind == "ok"
    return dlc.torch_module(path).eval()


def test_a_repeated_linear_that_changes_the_width(tmp_path):
    """`linear(4) * 3` on 8 features: 8 -> 4, then 4 -> 4 twice (was refused as an emitter bug)."""
    module = _module(tmp_path, "network N {\n  input x: f32[B, 8]\n  output y = x -> linear(4) * 3\n}\n")
    assert sum(p.numel() for p in module.parameters()) == (8 * 4 + 4) + 2 * (4 * 4 + 4)
    assert module(torch.randn(2, 8)).shape == (2, 4)


def test_a_repeated_linear_in_a_block_is_not_built_with_the_first_copys_width(tmp_path):
    """Found in alexnet.arch mutated to `linear(hidden) * 100`: every copy was nn.Linear(9216, hidden),
    1.7 billion parameters more than the summary's count."""
    module = _module(tmp_path, "block C(h, n) {\n  input x\n  output y = x -> linear(h) * n -> relu\n}\n"
                               "network N {\n  input x: f32[B, 8]\n  output y = x -> C(4, 3) -> C(6, 0) -> C(5, 1)\n}\n")
    assert sum(p.numel() for p in module.parameters()) == (8 * 4 + 4) + 2 * (4 * 4 + 4) + (4 * 5 + 5)
    assert module(torch.randn(2, 8)).shape == (2, 5)


def test_a_repeated_strided_conv_sizes_what_follows_by_its_last_copy(tmp_path):
    module = _module(tmp_path, "network N {\n  input x: f32[B, 3, 8, 8]\n  h = x -> conv2d(4, 3, padding=1)\n"
                               "  output y = h -> c: conv2d(6, 3, stride=2, padding=1) * 2 -> flatten -> linear(10)\n}\n")
    assert [tuple(m.weight.shape) for m in module.c] == [(6, 4, 3, 3), (6, 6, 3, 3)]
    assert module(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_a_loss_with_a_non_literal_reduce_in_an_untaken_branch_is_refused(tmp_path):
    """Found in vgg16.arch mutated to `l1(v, 3, padding=1)` in the `batch_norm` branch no instance
    takes: a ValueError escaped the PyTorch emitter."""
    path = tmp_path / "l1.arch"
    path.write_text("block F(v, p=false) {\n  input x\n  if p {\n    output y = x -> l1(v)\n  } else {\n"
                    "    output y = x -> relu\n  }\n}\nnetwork N {\n  input x: f32[B, 4]\n  output y = x -> F(3)\n}\n")
    assert compile_file(path).ok
    with pytest.raises(CompileError) as err:
        torch_source(path)
    assert "E0601" in str(err.value) and "`reduce` must be a constant" in str(err.value)


def test_an_output_that_is_empty_at_the_example_sizes_is_a_located_error(tmp_path):
    """Found in digits_cnn.arch mutated to `H=1`: `maxpool2d(2)` made H // 2 = 0 there, the spec
    checked, and PyTorch refused to run it ("Output size is too small")."""
    path = tmp_path / "e.arch"
    path.write_text("network N {\n  input x: f32[B, 1, H=1, W=28]\n  output y = x -> maxpool2d(2)\n}\n")
    [diag] = compile_file(path).diagnostics
    assert diag.code == "E0401" and diag.primary.span.line == 3
    assert "at the example sizes H=1" in diag.message and "is 0" in diag.message
    path.write_text("network N {\n  input x: f32[B, 1, H=2, W=28]\n  output y = x -> maxpool2d(2)\n}\n")
    assert compile_file(path).ok


def test_the_compilers_own_ops_are_not_a_specs_to_call(tmp_path):
    """Found in word2vec.arch mutated to `-> expect`: the internal op that checks a block input's
    declared type was callable, and its rule read an attr no spec gives (KeyError)."""
    path = tmp_path / "x.arch"
    for name in ("expect", "parameter"):
        path.write_text(f"network N {{\n  input x: f32[B, 4]\n  output y = x -> {name}\n}}\n")
        [diag] = compile_file(path).diagnostics
        assert (diag.code, diag.primary.span.line, diag.primary.span.col) == ("E0201", 3, 19)
        assert f"unknown op `{name}`" in diag.message


def test_an_overflowing_default_that_every_caller_overrides_is_still_refused(tmp_path):
    """Found in vit_b_16.arch mutated to `attention_p=1e400`: the default was never evaluated (the
    network passes the argument), so the PyTorch class was written with `attention_p=inf`."""
    path = tmp_path / "d.arch"
    path.write_text("block D(p=1e400) {\n  input x\n  output y = x -> dropout(p)\n}\n"
                    "network N {\n  input x: f32[B, 4]\n  output y = x -> D(0.5)\n}\n")
    [diag] = compile_file(path).diagnostics
    assert (diag.code, diag.primary.span.line, diag.primary.span.col) == ("E0522", 1, 11)
    assert "too large for a 64-bit float" in diag.message


def test_a_repeated_op_with_no_copy_sizes_what_follows_by_its_input(tmp_path):
    """Found in pixelcnn.arch mutated to `masked_conv2d(2 * h, 7, mask="A") * 0`: what followed was
    built for the first copy's 2h channels where the IR has the input's 1 (8,128 parameters more)."""
    module = _module(tmp_path, "network N {\n  input x: f32[B, 8]\n  output y = x -> c: linear(4) * 0 -> linear(3)\n}\n")
    assert sum(p.numel() for p in module.parameters()) == 8 * 3 + 3
    assert module(torch.randn(2, 8)).shape == (2, 3)
    mixed = "block C(n) {\n  input x\n  output y = x -> linear(4) * n -> linear(3)\n}\n" \
            "network N {\n  input x: f32[B, 8]\n  output y = x -> C(0) -> C(1)\n}\n"
    assert fuzz.check_spec(mixed).kind == "refused"  # 8 or 4 features into linear(3): E0601, never a guess
