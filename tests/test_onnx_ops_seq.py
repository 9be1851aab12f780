"""The ONNX forms of sequence ops (`OpDef.onnx`, compiler/ops/): each op and its variants in a
tiny spec, exported with the generated PyTorch module's weights and run by ONNX Runtime at two
batch sizes (symbolic B; symbolic T at two lengths where the spec leaves T open), compared with
the module in eval mode, and checked by the full ONNX checker."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from conftest import onnx_vs_torch
from dlc.compiler.emit.onnx import emit_onnx
from dlc.compiler.checkpoint import random_weights
from dlc.compiler.pipeline import compile_file


def _check(tmp_path, body: str, dims_list=(None,), name: str = "N", **kw) -> onnx.ModelProto:
    spec = tmp_path / "t.arch"
    spec.write_text(f"network {name} {{\n{body}\n}}\n")
    model = None
    for dims in dims_list:
        model = onnx_vs_torch(spec, name, dims=dims, **kw)
    onnx.checker.check_model(model, full_check=True)
    _shape_inference_agrees(spec, name)
    return model


def _shape_inference_agrees(spec, name: str) -> None:
    """ONNX's strict shape inference gives every IR value its IR shape: constant dims constant,
    symbolic dims not baked in."""

    graph = compile_file(spec).graphs[name]
    names: dict[int, str] = {}
    model = onnx.shape_inference.infer_shapes(emit_onnx(graph, random_weights(graph), names), strict_mode=True)
    shapes = {v.name: v.type.tensor_type.shape for v in [*model.graph.value_info, *model.graph.output]}
    for vid, onnx_name in names.items():
        ir = graph.values[vid].type
        if onnx_name not in shapes:
            continue  # a graph input
        dims = shapes[onnx_name].dim
        assert len(dims) == ir.rank, (onnx_name, str(ir))
        for got, want in zip(dims, ir.shape, strict=True):
            assert (got.dim_value == want.value) if want.is_const else not got.HasField("dim_value"), \
                (onnx_name, str(ir), dims)


T_TWICE = ({"T": 5}, {"T": 9})  # a symbolic sequence length, checked at two values


CASES = {
    # embeddings and positions
    "embedding_i64": ("input ids: i64[B, T=6]\n output y = ids -> emb: embedding(11, 4)", T_TWICE, 11),
    "embedding_padding_rank_2": ("input ids: i64[B, 3, 5]\n output y = ids -> emb: embedding(7, 3, padding_idx=0)",
                                 (None,), 7),
    "pos_embedding_symbolic_T": ("input x: f32[B, T=6, 8]\n output y = x -> pe: pos_embedding(12)", T_TWICE, 2),
    "pos_embedding_static_T": ("input x: f32[B, 5, 8]\n output y = x -> pe: pos_embedding(7)", (None,), 2),
    "gpt_style_inputs": ("input ids: i64[B, T=6]\n output y = ids -> wte: embedding(13, 8) -> wpe: pos_embedding(16)"
                         " -> attn: mha(2, causal=true)", T_TWICE, 13),
    "sinusoidal_symbolic_T": ("input x: f32[B, T=6, 8]\n output y = x -> sinusoidal_pe(max_len=40)", T_TWICE, 2),
    "sinusoidal_static_T": ("input x: f32[B, 7, 6]\n output y = x -> sinusoidal_pe", (None,), 2),
    "sinusoidal_in_block": ("input x: f32[B, T=6, 4]\n h = x -> scale(2.0) -> sinusoidal_pe(max_len=100)\n"
                            " output y = h -> linear(3)", T_TWICE, 2),
    # attention
    "mha_self": ("input x: f32[B, T=6, 8]\n output y = x -> attn: mha(2)", T_TWICE, 2),
    "mha_self_causal_no_bias": ("input x: f32[B, T=6, 8]\n output y = x -> attn: mha(4, causal=true, bias=false)",
                                T_TWICE, 2),
    "mha_causal_static": ("input x: f32[B, 5, 6]\n output y = x -> attn: mha(3, causal=true, dropout=0.1)",
                          (None,), 2),
    "mha_cross": ("input q: f32[B, T=6, 8]\n input m: f32[B, S=4, 5]\n output y = (q, m) -> attn: mha(2)",
                  ({"T": 5, "S": 3}, {"T": 2, "S": 7}), 2),
    "mha_cross_causal": ("input q: f32[B, T=6, 8]\n input m: f32[B, S=4, 8]\n"
                         " output y = (q, m) -> attn: mha(2, causal=true)",
                         ({"T": 5, "S": 3}, {"T": 3, "S": 7}), 2),
    "mha_qkv": ("input q: f32[B, T=6, 8]\n input k: f32[B, S=4, 5]\n input v: f32[B, S=4, 3]\n"
                " output y = (q, k, v) -> attn: mha(4, bias=false)", ({"T": 5, "S": 3}, {"T": 2, "S": 7}), 2),
    "attention": ("input q: f32[B, T=6, 4]\n input k: f32[B, S=5, 4]\n input v: f32[B, S=5, 3]\n"
                  " output y = (q, k, v) -> attention", ({"T": 5, "S": 3}, {"T": 2, "S": 7}), 2),
    "attention_causal_unscaled_4d": ("input q: f32[B, 2, T=6, 4]\n input k: f32[B, 2, T=6, 4]\n"
                                     " input v: f32[B, 2, T=6, 3]\n"
                                     " output y = (q, k, v) -> attention(causal=true, scaled=false)", T_TWICE, 2),
    "attention_symbolic_D": ("input q: f32[B, 3, D=4]\n input k: f32[B, 5, D=4]\n input v: f32[B, 5, 2]\n"
                             " output y = (q, k, v) -> attention(causal=true)", ({"D": 4}, {"D": 7}), 2),
    "additive_attention": ("input q: f32[B, T=6, 5]\n input m: f32[B, S=4, 3]\n"
                           " output y = (q, m) -> attn: additive_attention(7)",
                           ({"T": 5, "S": 3}, {"T": 2, "S": 6}), 2),
    # recurrent layers
    "lstm": ("input x: f32[B, T=6, 5]\n output y = x -> rnn: lstm(4)", T_TWICE, 2),
    "lstm_2_layers_bidirectional_state": ("input x: f32[B, T=6, 5]\n"
                                          " y, h, c = x -> rnn: lstm(4, layers=2, bidirectional=true, state=true)\n"
                                          " output y, h, c", T_TWICE, 2),
    "lstm_initial_states": ("input x: f32[B, T=6, 5]\n input h0: f32[2, B, 3]\n input c0: f32[2, B, 3]\n"
                            " y, h, c = (x, h0, c0) -> rnn: lstm(3, layers=2, dropout=0.2, state=true)\n"
                            " output y, h, c", T_TWICE, 2),
    "lstm_bidirectional_initial_states": ("input x: f32[B, 4, 5]\n input h0: f32[4, B, 3]\n input c0: f32[4, B, 3]\n"
                                          " output y = (x, h0, c0) -> rnn: lstm(3, layers=2, bidirectional=true)",
                                          (None,), 2),
    "gru": ("input x: f32[B, T=6, 5]\n output y = x -> rnn: gru(4)", T_TWICE, 2),
    "gru_2_layers_bidirectional_state": ("input x: f32[B, T=6, 5]\n"
                                         " y, h = x -> rnn: gru(3, layers=2, bidirectional=true, state=true)\n"
                                         " output y, h", T_TWICE, 2),
    "gru_initial_state": ("input x: f32[B, T=6, 5]\n input h0: f32[2, B, 4]\n"
                          " y, h = (x, h0) -> rnn: gru(4, bidirectional=true, state=true)\n output y, h", T_TWICE, 2),
    "gru_3_layers_initial_state": ("input x: f32[B, T=6, 2]\n input h0: f32[3, B, 4]\n"
                                   " output y = (x, h0) -> rnn: gru(4, layers=3)", (None,), 2),
    # generative
    "reparameterize": ("input mu: f32[B, 4]\n input logvar: f32[B, 4]\n output z = (mu, logvar) -> reparameterize",
                       (None,), 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_matches_pytorch(tmp_path, case):
    body, dims_list, int_high = CASES[case]
    _check(tmp_path, "  " + body, dims_list, int_high=int_high)


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def test_symbolic_dims_stay_symbolic(tmp_path):
    model = _check(tmp_path, "  input x: f32[B, T=6, 8]\n  output y = x -> pe: pos_embedding(12) -> sinusoidal_pe"
                   " -> attn: mha(2, causal=true) -> rnn: gru(4)", T_TWICE)
    x, y = model.graph.input[0].type.tensor_type.shape.dim, model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in x] == ["B", "T", 8]
    assert [d.dim_param or d.dim_value for d in y] == ["B", "T", 4]
    ops = _ops(model)
    assert "Trilu" in ops and "GRU" in ops
    shapes = [list(t.dims) for t in model.graph.initializer]
    assert [6, 8] not in shapes and [6, 6] not in shapes  # no table or mask sized by the example T
    assert [5000, 8] in shapes  # the sinusoidal table keeps max_len rows for a symbolic T


def test_static_lengths_give_constant_tables_and_masks(tmp_path):
    model = _check(tmp_path, "  input x: f32[B, 5, 6]\n  output y = x -> sinusoidal_pe -> attn: mha(2, causal=true)")
    ops = _ops(model)
    assert "Trilu" not in ops and "Shape" not in ops
    shapes = [list(t.dims) for t in model.graph.initializer]
    assert [5, 6] in shapes and [5, 5] in shapes and [5000, 6] not in shapes


def test_one_recurrent_node_per_layer_with_onnx_gate_order(tmp_path):
    model = _check(tmp_path, "  input x: f32[B, T=6, 5]\n  output y = x -> rnn: lstm(3, layers=2, bidirectional=true)",
                   T_TWICE)
    nodes = [n for n in model.graph.node if n.op_type == "LSTM"]
    assert len(nodes) == 2
    attrs = {a.name: helper_value(a) for a in nodes[0].attribute}
    assert attrs["direction"] == b"bidirectional" and attrs["hidden_size"] == 3 and attrs.get("layout", 0) == 0
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert "rnn.weight_ih_l0" not in inits  # only the reordered copy is stored
    graph = compile_file(tmp_path / "t.arch").graphs["N"]
    weights = random_weights(graph)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in emit_onnx(graph, weights).graph.initializer}
    w = inits[nodes[0].input[1]]
    pt = weights["rnn.weight_ih_l0"].reshape(4, 3, 5)  # PyTorch (i, f, g, o)
    np.testing.assert_array_equal(w[0].reshape(4, 3, 5), pt[[0, 3, 1, 2]])  # ONNX (i, o, f, c)
    assert inits[nodes[1].input[1]].shape == (2, 12, 6)  # layer 2 reads both directions


def test_gru_is_linear_before_reset(tmp_path):
    model = _check(tmp_path, "  input x: f32[B, T=6, 5]\n  output y = x -> rnn: gru(3)", T_TWICE)
    (node,) = [n for n in model.graph.node if n.op_type == "GRU"]
    assert {a.name: helper_value(a) for a in node.attribute}["linear_before_reset"] == 1


def helper_value(attr: onnx.AttributeProto):
    return onnx.helper.get_attribute_value(attr)


def test_embedding_of_i32_ids(tmp_path):
    """conftest's random inputs are i64; i32 ids are checked here against the table directly."""
    import onnxruntime as ort

    from dlc.compiler.emit.onnx import emit_onnx
    from dlc.compiler.checkpoint import random_weights
    from dlc.compiler.pipeline import compile_file

    spec = tmp_path / "t.arch"
    spec.write_text("network N {\n  input ids: i32[B, T=6]\n  output y = ids -> emb: embedding(7, 3)\n}\n")
    graph = compile_file(spec).graphs["N"]
    weights = random_weights(graph)
    model = emit_onnx(graph, weights)
    onnx.checker.check_model(model, full_check=True)
    ids = np.random.default_rng(0).integers(0, 7, (2, 5)).astype(np.int32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    np.testing.assert_array_equal(got, weights["emb.weight"][ids])


def test_sinusoidal_table_matches_the_pytorch_helper():
    import importlib.util

    from conftest import ROOT
    from dlc.compiler.ops.embedding import sinusoidal_table

    spec = importlib.util.spec_from_file_location("layers", ROOT / "runtime" / "layers" / "__init__.py")
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    for length, dim in ((64, 8), (128, 64), (32, 512), (1024, 768)):
        ours, theirs = sinusoidal_table(length, dim), layers.sinusoidal_table(length, dim).numpy()
        # equal up to PyTorch's exp being one ulp off in a few frequencies: about p * 1.2e-7 at position p
        bound = 1e-6 + 1.2e-7 * np.arange(length, dtype=np.float64)[:, None]
        assert (np.abs(ours - theirs) <= bound).all()
        assert (ours == theirs).mean() > 0.9
