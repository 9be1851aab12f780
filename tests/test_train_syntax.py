"""The words of training definitions are keywords only where a training statement begins: everywhere
else they stay names, so specs that used them before training definitions existed mean the same."""
from __future__ import annotations

import pytest

from dlc.compiler.names import reserved
from dlc.compiler.pipeline import compile_file

WORDS = ("train", "model", "data", "config", "optimizer", "schedule", "step", "show", "from", "freeze")


@pytest.mark.parametrize("word", WORDS)
def test_a_word_of_training_definitions_is_a_name_in_a_network(tmp_path, word):
    path = tmp_path / "net.arch"
    path.write_text(f"""
network N({word}=1) {{
  input x: f32[B, 8]
  let v = {word} + 1
  {word} = x -> relu
  y = {word} -> {word}: linear(4)
  output z = y -> slice(-1, 1, step=2)
}}
""")
    result = compile_file(path)
    if reserved(word, "parameter") or reserved(word, "label"):  # `from` (a Python keyword), `train:` (nn.Module's)
        assert {d.code for d in result.diagnostics} == {"E0228"}, [d.message for d in result.diagnostics]
        return
    assert result.ok, [d.message for d in result.diagnostics]
    assert [w.name for w in result.graphs["N"].weights] == [f"{word}.weight", f"{word}.bias"]


def test_inside_a_train_body_the_words_are_names_where_no_statement_begins(tmp_path):
    path = tmp_path / "t.arch"
    path.write_text("""
network N(k=4) {
  input x: f32[B, 1, 8, 8]
  output logits = x -> flatten -> fc: linear(k)
}
train T {
  data digits(size=8)
  model model = N(k=10)
  optimizer adam(lr=1e-3)
  input image: f32[B, 1, 8, 8], label: i64[B]
  data = image -> model
  step = data -> relu
  output loss = (step, label) -> cross_entropy
}
""")
    result = compile_file(path)
    assert result.ok, [d.message for d in result.diagnostics]
    plan = result.trains["T"]
    assert [m.name for m in plan.models] == ["model"] and plan.data.kind == "digits"
    assert [n.op for n in plan.steps[0].graph.nodes if n.op in ("relu", "cross_entropy")] == ["relu", "cross_entropy"]


def test_a_misspelled_training_word_is_a_located_syntax_error(tmp_path):
    path = tmp_path / "t.arch"
    path.write_text("network N { input x: f32[B, 4]  output y = x -> relu }\ntrain T {\n  modl net = N()\n}\n")
    result = compile_file(path)
    (diag,) = result.diagnostics
    assert diag.code == "E0001" and diag.primary.span.line == 3
