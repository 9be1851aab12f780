"""Language features end to end: naming, loops, conditionals, recursion, sharing, tying, imports."""
from __future__ import annotations

import math

from conftest import compile_text, error_codes


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
