"""Language features end to end: naming, loops, conditionals, recursion, sharing, tying, imports."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import ROOT, compile_text, error_codes
from dlc.compiler.passes.cost import count_costs
from dlc.compiler.pipeline import compile_file


def _weights(result, model):
    return {w.name: w.shape for w in result.graphs[model].weights if w.trainable}


def test_sequential_numbering_labels_and_repetition(tmp_path):
    text = """
block Layer(d) {
  input x
  output y = x -> fc: linear(d) -> relu
}
network N {
  input x: f32[B, 8]
  h = x -> linear(16) -> relu -> blocks: Layer(16) * 3 -> Layer(4) * 2 -> head: linear(2)
  output h
}
"""
    r = compile_text(text, tmp_path)
    assert r.ok
    names = sorted(_weights(r, "N"))
    assert names == sorted(["0.weight", "0.bias", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.1.fc.weight",
                            "blocks.1.fc.bias", "blocks.2.fc.weight", "blocks.2.fc.bias", "2.fc.weight", "2.fc.bias",
                            "3.fc.weight", "3.fc.bias", "head.weight", "head.bias"])


def test_loops_conditionals_and_parameter_arithmetic(tmp_path):
    text = """
let widths = [8, 16, 32]
block Stage(cin, cout) {
  input x
  y = x -> conv2d(cout, 3, padding=1)
  if cin != cout {
    s = x -> conv2d(cout, 1)
  } else {
    s = x
  }
  output z = (y, s) -> add
}
network N {
  input x: f32[B, 8, H=32, W=32]
  h = x
  for i, w in enumerate(widths) {
    h = h -> Stage(widths[max(i - 1, 0)], w)
  }
  output h
}
"""
    r = compile_text(text, tmp_path)
    assert r.ok, r.diagnostics
    w = _weights(r, "N")
    # the first stage keeps its width (no projection); the next two project
    assert [k for k in w if k.startswith("0.")] == ["0.0.weight", "0.0.bias"]
    assert w["1.1.weight"] == (16, 8, 1, 1) and w["2.1.weight"] == (32, 16, 1, 1)
    out = r.graphs["N"].values[r.graphs["N"].outputs[0][1]].type
    assert [str(d) for d in out.shape] == ["B", "32", "H", "W"]


def test_recursive_block_with_base_case(tmp_path):
    text = """
block Level(ch, depth) {
  input x
  skip = x -> conv2d(ch, 3, padding=1) -> relu
  if depth == 0 {
    y = skip
  } else {
    inner = skip -> maxpool2d(2) -> Level(ch * 2, depth - 1) -> conv_transpose2d(ch, 2, stride=2)
    y = (skip, inner) -> concat(dim=1) -> conv2d(ch, 1)
  }
  output y
}
network UNetish {
  input x: f32[B, 1, 64, 64]
  output y = x -> Level(4, 3)
}
"""
    r = compile_text(text, tmp_path)
    assert r.ok, r.diagnostics
    g = r.graphs["UNetish"]
    assert tuple(d.value for d in g.values[g.outputs[0][1]].type.shape[1:]) == (4, 64, 64)
    assert max(n.path.count(".") for n in g.nodes) >= 4  # four nested levels


def test_shared_layer_counts_once_and_tie_reuses_weight(tmp_path):
    text = """
block Tower(d) {
  input x
  output y = x -> flatten -> linear(d) -> relu -> linear(d)
}
network Siamese {
  input a: f32[B, 1, 8, 8]
  input b: f32[B, 1, 8, 8]
  let tower = Tower(32)
  ea = a -> tower
  eb = b -> tower
  output score = (ea, eb) -> sub -> abs -> linear(1) -> sigmoid
}
network Tied {
  input t: i64[B, T=5]
  h = t -> wte: embedding(100, 16) -> layernorm
  output logits = h -> head: linear(100, bias=false, tie=wte)
}
"""
    r = compile_text(text, tmp_path)
    assert r.ok, r.diagnostics
    siamese = _weights(r, "Siamese")
    tower = 64 * 32 + 32 + 32 * 32 + 32
    assert sum(math.prod(s) for s in siamese.values()) == tower + 33
    assert sum(1 for n in r.graphs["Siamese"].nodes if n.weight_scope == "tower.1") == 2  # applied twice
    tied = _weights(r, "Tied")
    assert "head.weight" not in tied and tied["wte.weight"] == (100, 16)
    head = next(n for n in r.graphs["Tied"].nodes if n.path == "head")
    assert head.ties == (("weight", "wte.weight"),)


def test_networks_compose_and_declared_types_are_checked(tmp_path):
    text = """
network Encoder {
  input x: f32[B, 784]
  h = x -> linear(64) -> relu
  mu = h -> linear(8)
  logvar = h -> linear(8)
  output mu, logvar
}
network Decoder {
  input z: f32[B, 8]
  output x = z -> linear(784) -> sigmoid
}
network VAE {
  input x: f32[B, 784]
  mu, logvar = x -> encoder: Encoder
  z = (mu, logvar) -> reparameterize
  output recon = z -> decoder: Decoder
  output mu, logvar
}
network Wrong {
  input x: f32[B, 100]
  mu, logvar = x -> Encoder
  output mu
}
"""
    r = compile_text(text, tmp_path)
    assert error_codes(r) == ["E0401"]
    assert "declared [B, 784] but receives (B, 100)" in r.diagnostics[0].message
    g = r.graphs["VAE"]
    assert [name for name, _ in g.outputs] == ["recon", "mu", "logvar"]
    assert "encoder.0.weight" in {w.name for w in g.weights}


def test_import_with_alias_and_stdlib(tmp_path):
    (tmp_path / "lib.arch").write_text("block Two(d) {\n input x\n output y = x -> linear(d) -> linear(d)\n}\n")
    text = """
import "lib.arch" as lib
import "std/residual.arch"
network N {
  input x: f32[B, 4]
  output y = x -> lib.Two(4) -> Residual(lib.Two(4))
}
"""
    r = compile_text(text, tmp_path)
    assert r.ok, r.diagnostics
    assert "1.f.0.weight" in _weights(r, "N")


def test_labels_in_loops_are_rejected_with_help(tmp_path):
    text = "network N {\n input x: f32[B, 4]\n h = x\n for i in range(2) {\n  h = h -> fc: linear(4)\n }\n output h\n}\n"
    r = compile_text(text, tmp_path)
    assert error_codes(r) == ["E0211"]


def test_used_before_definition_and_tensor_value_confusion(tmp_path):
    text = """
network N {
  input x: f32[B, 4]
  y = z -> relu
  z = x -> relu
  w = x -> linear(x)
  output y
}
"""
    r = compile_text(text, tmp_path)
    assert error_codes(r) == ["E0215", "E0216"]  # used before definition; a tensor as a value


# --- conditional expressions and round() -------------------------------------------------------------

def _holds(tmp_path, *asserts: str, params: str = "") -> list[str]:
    """The codes a network with these `assert` lines reports ([] when every one holds)."""
    body = "\n".join(f"  assert {a}, \"{a}\"" for a in asserts)
    text = f"network N({params}) {{\n  input x: f32[B, 2]\n{body}\n  output y = x -> relu\n}}\n"
    return error_codes(compile_text(text, tmp_path))


def test_conditional_expression_binds_like_pythons(tmp_path):
    assert _holds(tmp_path,
                  "(1 if false else 2 + 3) == 5",            # the else part is `2 + 3`
                  "(1 if true else 2) * 3 == 3",
                  "(1 if false else 2 if false else 3) == 3",  # right-associative
                  "(1 if false or true else 2) == 1",         # the condition is an `or`
                  "(2 if true and false else 4) == 4",
                  "[w if w > 2 else 0, 7][0] == 3",
                  "(w // 2 if w % 2 == 1 else w) == 1",
                  params="w=3") == []
    assert _holds(tmp_path, "(1 if true else 2) == 2") == ["E0501"]


def test_only_the_branch_taken_is_evaluated(tmp_path):
    assert _holds(tmp_path, "(1 if d == 0 else 10 // d) == 1", "(10 // d if d != 0 else 0) == 0",
                  params="d=0") == []


def test_a_let_followed_by_an_if_statement_is_not_a_conditional(tmp_path):
    text = """
network N(stride=2) {
  input x: f32[B, 4, 8, 8]
  let w = 8 if stride == 2 else 4
  let v = w
  if v == 8 {
    h = x -> conv2d(w, 1)
  } else {
    h = x -> conv2d(v, 3)
  }
  assert v > 0
  if v > 100 { h = h -> relu }
  output h
}
"""
    r = compile_text(text, tmp_path)
    assert r.ok, r.diagnostics
    assert _weights(r, "N") == {"0.weight": (8, 4, 1, 1), "0.bias": (8,)}


def test_round_is_pythons_round(tmp_path):
    assert _holds(tmp_path, "round(2.5) == 2", "round(3.5) == 4", "round(-0.5) == 0", "round(7) == 7",
                  "round(2.675, 2) == 2.67", "round(w / 8) * 8 == 32", params="w=36") == []
    r = compile_text("network N {\n  input x: f32[B, 2]\n  output y = x -> linear(round(\"a\"))\n}\n", tmp_path)
    assert error_codes(r) == ["E0502"]
    r = compile_text("network N {\n  input x: f32[B, 2]\n  output y = x -> linear(round(1.5, 2, 3))\n}\n", tmp_path)
    assert error_codes(r) == ["E0517"]


def test_an_unknown_function_lists_the_built_ins(tmp_path):
    from dlc.compiler.builtins import BUILTINS

    r = compile_text("network N {\n  input x: f32[B, 2]\n  output y = x -> linear(roud(2.5))\n}\n", tmp_path)
    (diag,) = r.diagnostics
    assert diag.code == "E0519" and diag.message == "unknown function `roud`"
    assert diag.help == "did you mean `round`?"
    assert diag.notes == ("built-in functions: " + ", ".join(f"`{b}`" for b in sorted(BUILTINS)),)
    assert "round" in BUILTINS


def _literal(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else repr(v)


def test_conditionals_and_round_in_python_compute_what_the_compiler_does(tmp_path):
    """The PyTorch emitter writes spec expressions as Python: each must evaluate to the IR's value."""
    from dlc.compiler.emit.torch.pysource import py_expr
    from dlc.compiler.syntax.parse import parse
    from dlc.compiler.diagnostics import Diagnostics

    exprs = ["a if b else c", "(a if b else c) + 1", "a if b else c if a else 7", "-(a if b else c)",
             "not (b if a else b)", "(a if a > c else c) ** 2", "round(a / 3) if b else round(c / 2, 1)",
             "[a, c][0 if b else 1] * 2", "(a or c) if b else (a and c)"]
    for a, b, c in [(1, True, 5), (4, False, 2), (0, True, 9)]:
        for text in exprs:
            module = parse(f"let v = {text}\n", "e.arch", Diagnostics())
            source = py_expr(module.items[0].value, str)
            spec = f"network N(a={a}, b={'true' if b else 'false'}, c={c}) {{\n  input x: f32[B, 2]\n" \
                   f"  assert ({text}) == {_literal(eval(source))}\n  output y = x -> relu\n}}\n"
            assert compile_text(spec, tmp_path).ok, (text, source)


# --- numbered labels ----------------------------------------------------------------------------------

def test_numbered_labels_name_layers_from_the_loop_variable(tmp_path):
    text = """
block Stack(n, start=1) {
  input x
  for i in range(n) {
    x = x -> denselayer{i + start}: linear(4)
  }
  for i, kind in enumerate(["a", "b"]) {
    x = x -> head_{kind}{i}_x: linear(4) -> relu
  }
  output x
}
network N {
  input x: f32[B, 4]
  h = x -> block: Stack(3) -> Stack(2, start=5)
  output h
}
"""
    r = compile_text(text, tmp_path)
    assert r.ok, r.diagnostics
    names = [w.name for w in r.graphs["N"].weights if w.name.endswith("weight")]
    assert names == ["block.denselayer1.weight", "block.denselayer2.weight", "block.denselayer3.weight",
                     "block.head_a0_x.weight", "block.head_b1_x.weight",
                     "0.denselayer5.weight", "0.denselayer6.weight", "0.head_a0_x.weight", "0.head_b1_x.weight"]
    assert [n.path for n in r.graphs["N"].nodes if n.op == "relu"] == ["block.0", "block.1", "0.0", "0.1"]


def test_numbered_labels_that_repeat_are_duplicate_labels(tmp_path):
    text = "network N {\n input x: f32[B, 4]\n h = x\n for i in range(3) {\n  h = h -> fc{i // 2}: linear(4)\n }\n output h\n}\n"
    r = compile_text(text, tmp_path)
    assert error_codes(r) == ["E0211"]
    assert r.diagnostics[0].message == "label `fc0` names two layers in `the network`"


def test_a_numbered_label_piece_must_be_an_integer_or_a_name(tmp_path):
    for piece, what in [("i / 2", "`0.0`"), ("[i]", "a list"), ("i > 0", "`False`"), ('"a.b"', '"a.b"')]:
        text = f"network N {{\n input x: f32[B, 4]\n h = x\n for i in range(1) {{\n  h = h -> fc{{{piece}}}: linear(4)\n }}\n output h\n}}\n"
        r = compile_text(text, tmp_path)
        assert error_codes(r) == ["E0520"], piece
        assert r.diagnostics[0].message == f"a piece of the numbered label `fc{{{piece}}}` is not an integer or a name"
        assert r.diagnostics[0].primary.text == f"this is {what}"


def test_a_numbered_label_binds_no_layer_value(tmp_path):
    text = "network N {\n input x: f32[B, 4]\n h = x -> fc{1}: linear(4) -> fc1\n output h\n}\n"
    assert error_codes(compile_text(text, tmp_path)) == ["E0201"]
    text = "network N(k=2) {\n input x: f32[B, 4]\n h = x -> fc{q}: linear(4)\n output h\n}\n"
    assert error_codes(compile_text(text, tmp_path)) == ["E0202"]  # its pieces are resolved like any expression


def test_densenet121_has_torchvisions_state_dict_keys():
    """torchvision's densenet121().state_dict(): 727 entries, dense layers `denselayer1` ... per block."""
    graph = compile_file("spec/densenet121.arch").graphs["DenseNet121"]
    keys = {w.name: w.shape for w in graph.weights}
    assert len(keys) == 727
    for block, layers in enumerate([6, 12, 24, 16], start=1):
        prefix = f"features.denseblock{block}.denselayer"
        assert {k.split(".")[2] for k in keys if k.startswith(prefix)} == {f"denselayer{k}" for k in range(1, layers + 1)}
    assert keys["features.denseblock1.denselayer1.norm1.weight"] == (64,)
    assert keys["features.denseblock4.denselayer16.conv2.weight"] == (32, 128, 3, 3)
    assert keys["features.transition3.conv.weight"] == (512, 1024, 1, 1) and keys["classifier.weight"] == (1000, 1024)


# --- free parameter tensors -------------------------------------------------------------------------

def test_parameter_tensors_are_named_in_their_block_and_counted(tmp_path):
    text = """
block LayerScale(d, init=1e-6) {
  input x
  param gamma: f32[d, 1, 1] = init
  output y = (x, gamma) -> mul
}
network N(d=4) {
  input x: f32[B, 4, 5, 5]
  param cls_token: f32[1, d, 1, 1] = normal(0.0, 0.02)
  let scale = LayerScale(d)
  h = (x, cls_token) -> add -> block: LayerScale(d, 0.1) -> scale -> scale
  output h
}
"""
    r = compile_text(text, tmp_path)
    assert r.ok, r.diagnostics
    g = r.graphs["N"]
    assert _weights(r, "N") == {"cls_token": (1, 4, 1, 1), "block.gamma": (4, 1, 1), "scale.gamma": (4, 1, 1)}
    assert count_costs(g).total_params == 4 + 4 + 4  # the shared layer's tensor counts once
    params = [n for n in g.nodes if n.op == "parameter"]
    assert [(n.path, n.weight_scope) for n in params] == [("cls_token", ""), ("block.gamma", "block"),
                                                          ("scale.gamma", "scale"), ("scale@1.gamma", "scale")]
    assert [n.attr["init"] for n in params[:2]] == [("normal", (("mean", 0.0), ("std", 0.02))),
                                                    ("constant", (("value", 0.1),))]
    assert params[0].inputs == () and g.values[params[0].outputs[0]].name == "cls_token"


def test_a_parameter_tensor_is_a_tensor_that_chains_read(tmp_path):
    text = "network N {\n input x: f32[B, 3]\n param t: f32[3] = ones\n y = t -> relu\n output z = (x, y) -> add\n}\n"
    assert compile_text(text, tmp_path).ok
    text = "network N {\n input x: f32[B, 3]\n y = (x, t) -> add\n param t: f32[3] = ones\n output y\n}\n"
    assert error_codes(compile_text(text, tmp_path)) == ["E0215"]  # used before its declaration
    text = "network N {\n input x: f32[B, 3]\n param t: f32[3] = ones\n output y = x -> linear(t)\n}\n"
    assert error_codes(compile_text(text, tmp_path)) == ["E0216"]  # a tensor, not a value


def test_parameter_tensor_names_share_the_labels_namespace(tmp_path):
    text = "network N {\n input x: f32[B, 3]\n param fc: f32[3]\n output y = x -> fc: linear(3)\n}\n"
    assert error_codes(compile_text(text, tmp_path)) == ["E0211"]
    text = "network N {\n input x: f32[B, 3]\n y = x -> fc: linear(3)\n param fc: f32[3]\n output z = (y, fc) -> add\n}\n"
    assert error_codes(compile_text(text, tmp_path)) == ["E0211"]
    text = "network N {\n input x: f32[B, 3]\n for i in range(2) {\n  param t: f32[3]\n  x = (x, t) -> add\n }\n output x\n}\n"
    assert error_codes(compile_text(text, tmp_path)) == ["E0211"]


def test_parameter_tensor_mistakes_are_located(tmp_path):
    def codes(decl: str) -> list[str]:
        text = f"network N(d=3) {{\n input x: f32[B, 3]\n param t: {decl}\n output y = t -> identity\n}}\n"
        return error_codes(compile_text(text, tmp_path))

    assert codes("f32[d] = zeros") == codes("f32[3]") == codes("f32[1] = -0.5") == codes("f32[d] = uniform(high=2)") == []
    assert codes("f32[d] = xavier") == ["E0521"]  # not an initializer
    assert codes('f32[d] = "zeros"') == ["E0521"]
    assert codes("f32[d] = normal(sd=1)") == ["E0203"]
    assert codes("f32[d] = normal(0, 1, 2)") == ["E0217"]
    assert codes("f32[d] = normal(std=-1)") == ["E0220"]
    assert codes("f32[d] = uniform(1, -1)") == ["E0220"]
    assert codes("i64[d] = zeros") == ["E0401"]  # must be floating-point
    assert codes("f32[T] = zeros") == ["E0406"]  # a weight needs fixed sizes
    r = compile_text("network N {\n input x: f32[B, 3]\n param t: f32[3] = gaussian\n output y = (x, t) -> add\n}\n",
                     tmp_path)
    (diag,) = r.diagnostics
    assert diag.message == "parameter tensor `t` needs an initializer or a number, got `gaussian`"
    assert diag.notes == ("initializers: `zeros`, `ones`, `normal`, `uniform`, or a number (every entry that value)",)


def test_vit_b_16_has_torchvisions_keys():
    """torchvision's vit_b_16().state_dict() keys, but the attention's in_proj_weight / in_proj_bias,
    which are q_proj, k_proj, v_proj here (same parameters, 3 tensors instead of 1)."""
    graph = compile_file("spec/vit_b_16.arch").graphs["VisionTransformer"]
    keys = {w.name: w.shape for w in graph.weights}
    assert count_costs(graph).total_params == 86_567_656
    assert keys["class_token"] == (1, 1, 768) and keys["encoder.pos_embedding"] == (1, 197, 768)
    assert keys["conv_proj.weight"] == (768, 3, 16, 16) and keys["heads.head.weight"] == (1000, 768)
    assert keys["encoder.ln.weight"] == (768,)
    layer = "encoder.layers.encoder_layer_11."
    assert {k[len(layer):] for k in keys if k.startswith(layer)} == {
        "ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "mlp.0.weight", "mlp.0.bias", "mlp.3.weight",
        "mlp.3.bias", "self_attention.out_proj.weight", "self_attention.out_proj.bias",
        *(f"self_attention.{p}_proj.{w}" for p in "qkv" for w in ("weight", "bias"))}
    assert {k.split(".")[2] for k in keys if k.startswith("encoder.layers.")} == {f"encoder_layer_{i}" for i in range(12)}
    assert len(keys) == 152 + 12 * 4  # torchvision's 152, each layer's in_proj pair as three pairs


# --- compiling with other parameter values (dlc summary --param, dlc.torch_module(spec, **params)) ---

PARAMS_SPEC = """
network Small(d=4, d_ff=4*d, acts=[true, false]) {
  input x: f32[B, 8]
  h = x -> linear(d) -> linear(d_ff)
  if acts[0] { h = h -> relu }
  output h
}
network Big(width, blocks=[2, 3]) {
  input x: f32[B, 8]
  h = x -> linear(width * blocks[1])
  output h
}
"""


def test_params_replace_defaults_and_later_defaults_follow(tmp_path):
    r = compile_text(PARAMS_SPEC, tmp_path, model="Small")
    assert r.ok and _weights(r, "Small")["1.weight"] == (16, 4)
    path = tmp_path / "t.arch"
    r = compile_file(path, "Small", params={"d": 6})
    assert r.ok and _weights(r, "Small")["1.weight"] == (24, 6)  # d_ff = 4*d with the new d
    r = compile_file(path, "Small", params={"d": 6, "d_ff": 5, "acts": [False, True]})
    assert _weights(r, "Small")["1.weight"] == (5, 6) and all(n.op != "relu" for n in r.graphs["Small"].nodes)


def test_params_go_to_the_model_or_the_last_network(tmp_path):
    r = compile_text(PARAMS_SPEC, tmp_path)
    assert error_codes(r) == ["E0212"]  # `Big` has no default for `width`
    r = compile_file(tmp_path / "t.arch", params={"width": 3})  # the last network, Big
    assert r.ok, r.diagnostics
    assert _weights(r, "Big")["0.weight"] == (9, 8) and _weights(r, "Small")["1.weight"] == (16, 4)
    r = compile_file(tmp_path / "t.arch", "Big", params={"width": 2, "blocks": (1, 1)})
    assert list(r.graphs) == ["Big"] and _weights(r, "Big")["0.weight"] == (2, 8)


def test_a_bad_param_is_a_param_error_or_a_located_diagnostic(tmp_path):
    from dlc.compiler.pipeline import ParamError

    compile_text(PARAMS_SPEC, tmp_path)
    path = tmp_path / "t.arch"
    with pytest.raises(ParamError, match=r"^`Small` has no parameter `dd` \(it takes: d, d_ff, acts\); "
                                         r"did you mean `d`\?$"):
        compile_file(path, "Small", params={"dd": 3})
    with pytest.raises(ParamError, match="the value of `d` is a dict"):
        compile_file(path, "Small", params={"d": {"a": 1}})
    assert error_codes(compile_file(path, "Small", params={"d": 0})) == ["E0220"]  # where `d` is used
    assert error_codes(compile_file(path, "Small", params={"acts": 3})) == ["E0503"]


def test_literals_as_the_command_line_gives_them():
    from dlc.compiler.syntax.parse import parse_literal

    assert [parse_literal(t) for t in ["10", "-2", "0.5", "-1e-3", "true", "none", '"relu"', "[6, 12, [1]]"]] == \
        [10, -2, 0.5, -1e-3, True, None, "relu", (6, 12, (1,))]
    for text in ["relu", "1 + 2", "[1,", "", "f(3)", "-true"]:
        with pytest.raises(ValueError):
            parse_literal(text)


def test_dlc_summary_param(tmp_path):
    def dlc(*args):
        return subprocess.run([sys.executable, "-m", "dlc", "summary", *args], capture_output=True, text=True,
                              cwd=ROOT)

    proc = dlc("spec/densenet121.arch", "--param", "blocks=[6, 12, 32, 32]", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total_params"] == 14_149_480  # torchvision's densenet169
    proc = dlc("spec/vit_b_16.arch", "--param", "hidden_dim=384", "--param", "num_heads=6", "--param",
               "mlp_dim=1536", "--json")
    assert json.loads(proc.stdout)["total_params"] == 22_050_664  # ViT-S/16
    bad_name = dlc("spec/resnet18.arch", "--param", "num_clases=10")
    assert (bad_name.returncode, bad_name.stdout) == (2, "")
    assert bad_name.stderr == ("error: `ResNet18` has no parameter `num_clases` (it takes: num_classes, image_size); "
                               "did you mean `num_classes`?\n")
    bad_value = dlc("spec/resnet18.arch", "--param", "num_classes=ten")
    assert bad_value.returncode == 2 and "--param expects NAME=VALUE" in bad_value.stderr
    unusable = dlc("spec/resnet18.arch", "--param", "num_classes=-3")
    assert unusable.returncode == 1 and "error[E0220]" in unusable.stderr and "--> spec/resnet18.arch:12:" in unusable.stderr
    assert "Traceback" not in bad_name.stderr + bad_value.stderr + unusable.stderr
