"""The front end under hostile input (issue 20): every repro ends in a located diagnostic, quickly,
never a traceback, a hang or an exhausted memory. The limits are compiler/limits.py's."""
from __future__ import annotations

import keyword
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlc.compiler import limits
from dlc.compiler.diagnostics import render_all
from dlc.compiler.limits import Budget
from dlc.compiler.names import MODULE_ATTRIBUTES
from dlc.compiler.pipeline import compile_file

DEFAULT = "network N(k={expr}) {{\n  input x: f32[B, 4]\n  output y = x -> relu\n}}\n"


def codes(path: Path, budget: Budget | None = None) -> list[str]:
    result = compile_file(path, budget=budget)
    return [d.code for d in result.diagnostics if d.severity == "error"]


def spec(tmp_path: Path, text: str, name: str = "n.arch") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rendered(path: Path) -> str:
    result = compile_file(path)
    return render_all(list(result.diagnostics), result.sources)


# --- numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, code", [
    ("2.0 ** 10000", "E0522"), ("10**400 / 3", "E0522"), ("float(10**400)", "E0522"), ("int(1e400)", "E0522"),
    ("floor(1e400)", "E0522"), ("int(1e400 - 1e400)", "E0522 E0522"), ("sqrt(-1)", "E0518"), ("0 ** -1", "E0522"),
    ("0.0 ** -1", "E0522"), ("1 / 0", "E0509"), ("range(10**100)", "E0522"), ("len(range(10**9))", "E0522"),
    ("len([0] * 10**10)", "E0522"), ("10**10**10", "E0522"), ("(-8.0) ** 0.5", "E0522"), ("1e308 * 10", "E0522"),
    ("99999999999999999999999999", "E0522"), ("int(1e300)", "E0522"), ("2 ** 63", "E0522"),
    ("-(2 ** 62) * 4", "E0522"), ("[1, 2] + [0] * 99999", "E0522"), ("1e400", "E0522"),
])
def test_out_of_range_values_are_located_errors(tmp_path, expr, code):
    path = spec(tmp_path, DEFAULT.format(expr=expr))
    assert codes(path) == code.split()  # `1e400 - 1e400`: each literal is one error
    text = rendered(path)
    assert "n.arch:1:" in text and "Traceback" not in text


@pytest.mark.parametrize("expr", ["2 ** 62", "2 ** 62 + (2 ** 62 - 1)", "-(2 ** 62) - (2 ** 62 - 1)", "1e308", "len(range(10**5))",
                                  "sum(range(1000))", "0.5 ** 2000"])
def test_values_at_the_limits_are_accepted(tmp_path, expr):
    assert codes(spec(tmp_path, DEFAULT.format(expr=expr))) == []


def test_the_integer_limit_is_i64():
    assert limits.checked_number(limits.MAX_INT) == 2**63 - 1
    with pytest.raises(limits.OutOfRange):
        limits.checked_number(limits.MAX_INT + 1)


# --- work: repetitions, recursion, loops, graph size ------------------------------------------

DOUBLING = """block R(n) {
  input x
  if n == 0 {
    output y = x -> relu
  } else {
    output y = x -> R(n - 1) -> R(n - 1)
  }
}
network N {
  input x: f32[B, 4]
  output y = x -> R(40)
}
"""

NESTED_FOR = """network N {
  input x: f32[B, 4]
  for i in range(100000) {
    for j in range(100000) {
      let k = i * j
    }
  }
  output y = x -> relu
}
"""

LONG_FOR = """network N {
  input x: f32[B, 4]
  h = x -> relu
  for i in range(100000) {
    h = h -> relu
  }
  output y = h
}
"""


@pytest.mark.parametrize("text, code", [
    ("network N {\n  input x: f32[B, 4]\n  output y = x -> relu * 100000000\n}\n", "E0522"),
    (DOUBLING, "E0523"),
    (NESTED_FOR, "E0523"),
    ("network N {\n  input x: f32[B, 400000000]\n  output y = x -> chunk(100000000)\n}\n", "E0523"),
    (LONG_FOR, "E0523"),
], ids=["repeat", "doubling-recursion", "nested-for", "chunk", "graph-size"])
def test_exhausting_specs_stop_at_the_budget(tmp_path, text, code):
    path = spec(tmp_path, text)
    assert codes(path) == [code]  # one diagnostic: later networks and steps do not repeat it
    assert "Traceback" not in rendered(path)


def test_the_budget_is_shared_by_every_network_of_a_file(tmp_path):
    body = "  input x: f32[B, 4]\n  h = x -> relu\n  for i in range(30) {\n    h = h -> relu\n  }\n  output y = h\n"
    text = "".join(f"network N{i} {{\n{body}}}\n" for i in range(4))
    path = spec(tmp_path, text)
    assert codes(path) == []
    assert codes(path, Budget(nodes=60)) == ["E0523"]  # 4 x 31 nodes


def test_the_time_budget_stops_a_slow_expansion(tmp_path):
    path = spec(tmp_path, NESTED_FOR)
    result = compile_file(path, budget=Budget(steps=10**9, seconds=0.5))
    messages = [d.message for d in result.diagnostics]
    assert len(messages) == 1 and "ran out of time" in messages[0]


def test_the_zoo_fits_well_inside_the_budget():
    for path in sorted(Path(__file__).parents[1].joinpath("spec").glob("*.arch")):
        budget = Budget()
        assert compile_file(path, budget=budget).ok, path
        assert budget.used_steps * 50 < limits.MAX_STEPS and budget.used_nodes * 20 < limits.MAX_NODES, path


# --- nesting ------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr", ["-" * 3000 + "1", "not " * 20000 + "true", "[" * 5000 + "]" * 5000,
                                  " + ".join(["1"] * 5000), " if true else ".join(["1"] * 3000)])
def test_deep_nesting_is_refused_before_the_parser_recurses(tmp_path, expr):
    path = spec(tmp_path, DEFAULT.format(expr=expr))
    assert codes(path) == ["E0004"]
    text = rendered(path)
    assert max(len(line) for line in text.splitlines()) < 200  # the 20,000-word line is shown cut


def test_redundant_parentheses_do_not_nest():
    """`((((1))))` is one node of the syntax tree however many parentheses it has (and evaluates)."""
    from dlc.compiler.diagnostics import Diagnostics
    from dlc.compiler.syntax.parse import parse

    diags = Diagnostics()
    module = parse(DEFAULT.format(expr="(" * 3000 + "7" + ")" * 3000), "p.arch", diags)
    assert len(diags) == 0 and module.items[0].params[0].default.value == 7


def test_the_deepest_nesting_allowed_evaluates_inside_the_deepest_recursion(tmp_path):
    """64 nested block instances (E0301's limit) around expressions at the nesting limit: no
    RecursionError anywhere (the front end has room for what its limits allow)."""
    long_sum = " + ".join(["n"] * 95)
    parens = "(" * 45 + "1" + ")" * 45
    text = (f"block R(n) {{\n  input x\n  let k = {long_sum}\n  let j = {parens}\n  if n == 0 {{\n"
            "    output y = x -> relu\n  } else {\n    output y = x -> R(n - 1)\n  }\n}\n"
            "network N {\n  input x: f32[B, 4]\n  output y = x -> R(62)\n}\n")
    result = compile_file(spec(tmp_path, text))
    assert result.ok and list(result.graphs) == ["N"]
    assert len(result.graphs["N"].nodes) == 1


# --- shapes, sizes ------------------------------------------------------------------------------

@pytest.mark.parametrize("stage, code", [
    ("linear(10**12)", "E0524"), ("linear(2**63)", "E0522"), ("conv2d(4, 3, stride=10**30)", "E0522"),
    ("linear(2**40)", "E0524"), ("flatten -> linear(70000) -> linear(70000)", "E0524"),
])
def test_sizes_are_bounded_where_they_are_declared(tmp_path, stage, code):
    path = spec(tmp_path, f"network N {{\n  input x: f32[B, 4, 8, 8]\n  output y = x -> {stage}\n}}\n")
    assert codes(path) == [code]


@pytest.mark.parametrize("dims, code", [("B, 10**12", "E0524"), ("B=0, 4", "E0524"), ("B(1), 4", "E0519")])
def test_declared_input_dims_are_checked(tmp_path, dims, code):
    path = spec(tmp_path, f"network N {{\n  input x: f32[{dims}]\n  output y = x -> relu\n}}\n")
    assert codes(path) == [code]


def test_an_op_rule_that_rejects_an_integer_input_is_a_located_error(tmp_path):
    from dlc.compiler.emit.torch import torch_source

    path = spec(tmp_path, "network N {\n  input x: i64[B, S]\n  output y = x -> conv_transpose2d(8, 3)\n}\n")
    assert codes(path) == ["E0401"]
    with pytest.raises(Exception) as err:  # the emitter refuses the same spec with the diagnostics
        torch_source(path)
    assert "E0401" in str(err.value)


# --- names the generated code could not hold ----------------------------------------------------

@pytest.mark.parametrize("text", [
    "network N(lambda=4) {\n  input x: f32[B, 4]\n  output y = x -> linear(lambda)\n}\n",
    "network N {\n  input x: f32[B, 4]\n  output y = x -> def: linear(4)\n}\n",
    "network N {\n  input x: f32[B, 4]\n  output pass = x -> linear(4)\n}\n",
    "network class {\n  input x: f32[B, 4]\n  output y = x -> linear(4)\n}\n",
    "network N(self=3) {\n  input x: f32[B, 4]\n  output y = x -> linear(self)\n}\n",
    "network N(nn=3) {\n  input x: f32[B, 4]\n  output y = x -> linear(nn)\n}\n",
    "network N {\n  input x: f32[B, 4]\n  let self = 3\n  output y = x -> linear(self)\n}\n",
    "network N {\n  input x: f32[B, 4]\n  for F in [1] {\n    let k = F\n  }\n  output y = x -> relu\n}\n",
    "network N {\n  input x: f32[B, 4]\n  output y = x -> forward: linear(4)\n}\n",
], ids=["param-keyword", "label-keyword", "output-keyword", "network-keyword", "param-self", "param-nn",
        "let-self", "loop-F", "label-forward"])
def test_reserved_names_are_refused(tmp_path, text):
    assert codes(spec(tmp_path, text)) == ["E0228"]


@pytest.mark.parametrize("word", keyword.kwlist)
def test_every_keyword_is_refused_as_a_label(tmp_path, word):
    path = spec(tmp_path, f"network N {{\n  input x: f32[B, 4]\n  output y = x -> {word}: linear(4)\n}}\n")
    assert codes(path) in (["E0228"], ["E0001"])  # `not`, `if`, `in`... do not even parse as a label


def test_every_module_attribute_is_refused_as_a_label(tmp_path):
    import torch.nn as nn

    attributes = {n for n in (*dir(nn.Module), *vars(nn.Module())) if not (n.startswith("__") and n.endswith("__"))}
    assert attributes <= MODULE_ATTRIBUTES, sorted(attributes - MODULE_ATTRIBUTES)  # a newer torch: extend the list
    for name in sorted(attributes):
        path = spec(tmp_path, f"network N {{\n  input x: f32[B, 4]\n  output y = x -> {name}: linear(4)\n}}\n")
        assert codes(path) == ["E0228"], name


def test_a_block_named_like_a_helper_layer_gives_way_to_it(tmp_path):
    import torch

    import dlc

    path = spec(tmp_path, "block Scale {\n  input x\n  output y = x -> lin: linear(4) -> scale(2.0)\n}\n"
                          "network N {\n  input x: f32[B, 4]\n  output y = x -> Scale -> scale(3.0)\n}\n")
    module = dlc.torch_module(path)
    assert [type(m).__name__ for m in module.children()] == ["Scale_", "Scale"]
    x = torch.randn(2, 4)
    lin = module.get_submodule("0.lin")
    assert torch.allclose(module(x), lin(x) * 6.0)


def test_a_network_named_like_a_helper_layer_is_refused_by_the_emitter(tmp_path):
    from dlc.compiler.diagnostics import CompileError

    import dlc

    path = spec(tmp_path, "network Scale {\n  input x: f32[B, 4]\n  output y = x -> linear(4) -> scale(3.0)\n}\n")
    with pytest.raises(CompileError) as err:
        dlc.torch_module(path)
    assert "E0601" in str(err.value) and "rename the network" in str(err.value)


# --- strings ------------------------------------------------------------------------------------

def test_unknown_escapes_are_refused_and_known_ones_kept(tmp_path):
    bad = spec(tmp_path, 'network N {\n  input x: f32[B, 4]\n  assert true, "a\\nb"\n  output y = x -> relu\n}\n')
    assert codes(bad) == ["E0005"]
    good = spec(tmp_path, 'network N {\n  input x: f32[B, 4]\n  assert false, "say \\"hi\\" \\\\ then"\n'
                          '  output y = x -> relu\n}\n', "good.arch")
    [diag] = compile_file(good).diagnostics  # the failed assert, with its message as written
    assert 'say "hi" \\ then' in diag.message


def test_control_bytes_of_a_spec_never_reach_the_terminal(tmp_path):
    path = spec(tmp_path, "network N {\n  input x: f32[B, 4]\n  output y = x -> relu\x1b[31m\x07\n}\n")
    text = rendered(path)
    assert "E0002" in text
    assert "\x1b" not in text and "\x07" not in text and "\\x1b" in text


# --- files --------------------------------------------------------------------------------------

IMPORTING = 'import "{target}"\nnetwork N {{\n  input x: f32[B, 4]\n  output y = x -> relu\n}}\n'


@pytest.mark.parametrize("target", ["/etc/shadow", "std/../../../../etc/hostname", "/proc/self/environ",
                                    "/etc/x.arch", "~/x.arch"])
def test_imports_of_other_files_are_refused_unread(tmp_path, target):
    path = spec(tmp_path, IMPORTING.format(target=target))
    assert codes(path) == ["E0109"]


def test_an_import_may_not_climb_out_of_the_root_directory(tmp_path):
    (tmp_path / "secret.arch").write_text("SECRET-CONTENT here\n")
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.arch").write_text("block B {\n  input x\n  output y = x -> relu\n}\n")
    assert codes(spec(root, IMPORTING.format(target="sub/ok.arch"))) == []
    path = spec(root, IMPORTING.format(target="../secret.arch"))
    assert codes(path) == ["E0109"]
    assert "SECRET" not in rendered(path)
    (root / "link.arch").symlink_to(tmp_path / "secret.arch")
    path = spec(root, IMPORTING.format(target="link.arch"))
    assert codes(path) == ["E0109"] and "SECRET" not in rendered(path)


def test_environment_of_proc_is_never_echoed(tmp_path):
    os.environ["DLC_TEST_MARKER"] = "marker-value-4711"
    path = spec(tmp_path, IMPORTING.format(target="/proc/self/environ"))
    assert "marker-value-4711" not in rendered(path)


def test_special_and_huge_files_are_refused_without_reading_them(tmp_path):
    fifo = tmp_path / "fifo.arch"
    os.mkfifo(fifo)
    (tmp_path / "zero.arch").symlink_to("/dev/zero")
    big = tmp_path / "big.arch"
    big.write_text("#" * (limits.MAX_SOURCE_BYTES + 10))
    for path, why in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device"), (big, "longer than"), (tmp_path, "a directory")):
        result = compile_file(path)
        [diag] = result.diagnostics
        assert diag.code == "E0101" and why in diag.message, (path, diag.message)
    assert codes(spec(tmp_path, IMPORTING.format(target="fifo.arch"))) == ["E0101"]
    assert codes(spec(tmp_path, IMPORTING.format(target="zero.arch"))) == ["E0109"]  # it resolves outside


# --- the command ---------------------------------------------------------------------------------

@pytest.mark.parametrize("expr", ["10**10**10", "len([0] * 10**10)", "-" * 3000 + "1"])
def test_dlc_check_exits_1_with_the_diagnostic(tmp_path, expr):
    path = spec(tmp_path, DEFAULT.format(expr=expr))
    proc = subprocess.run([sys.executable, "-m", "dlc", "check", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "error[E0" in proc.stderr and "Traceback" not in proc.stderr


def test_dlc_check_of_dev_zero_ends(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dlc", "check", "/dev/zero"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr


def test_an_output_declared_in_both_branches_is_one_output_of_the_module(tmp_path):
    import torch

    import dlc

    path = spec(tmp_path, "network N(p=true) {\n  input x: f32[B, 4]\n  h = x -> linear(4)\n  if p {\n"
                          "    output y = h -> sigmoid\n  } else {\n    output y = h\n  }\n}\n")
    assert [name for name, _ in compile_file(path).graphs["N"].outputs] == ["y"]
    for p, lowest in ((True, 0.0), (False, None)):
        module = dlc.torch_module(path, p=p)
        x = torch.randn(3, 4)
        y = module(x)
        assert isinstance(y, torch.Tensor) and y.shape == (3, 4)  # not a (y, y) tuple
        expected = module.get_submodule("0")(x)
        assert torch.allclose(y, torch.sigmoid(expected) if lowest is not None else expected)
