"""The loss family (compiler/ops/loss.py): objectives and metrics as ops of ordinary chains.

Each op's PyTorch form, compiled from a spec, against the quantity written out directly in torch
(log-softmax and gather, the KL formula, torch.distributions); shape-rule refusals as located
diagnostics that name both shapes; scalars `()` through shape inference, `add`, the emitter's shape
comments and `dlc summary`; the ONNX forms that exist (detach, bits, to_levels) against ONNX
Runtime, and the refusal of the others.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn import functional as F

from conftest import compile_text, onnx_vs_torch
from dlc.compiler.emit.torch.api import torch_module, torch_source
from dlc.compiler.ir.dims import Dim
from dlc.compiler.ops import OPS

BATCH = 3


def spec(inputs: dict[str, str], body: list[str], name: str = "N") -> str:
    lines = [f"network {name} {{", *(f"  input {n}: {t}" for n, t in inputs.items()), *(f"  {b}" for b in body), "}"]
    return "\n".join(lines) + "\n"


def write(tmp_path, text: str):
    path = tmp_path / "loss.arch"
    path.write_text(text)
    return path


def run_stage(tmp_path, inputs: dict[str, str], stage: str, values: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """`output y = (inputs...) -> stage` compiled to a module and run on `values`."""
    names = ", ".join(inputs)
    source = f"({names})" if len(inputs) > 1 else names
    module = torch_module(write(tmp_path, spec(inputs, [f"output y = {source} -> {stage}"]))).eval()
    return module(*values)


def logp(logits: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.log_softmax(logits, dim)


def nll(logits: torch.Tensor, label: torch.Tensor, dim: int) -> torch.Tensor:
    """-log p(label) at every position, the classes on `dim`."""
    return -logp(logits, dim).gather(dim, label.unsqueeze(dim)).squeeze(dim)


def probabilities(*shape: int, dim: int) -> torch.Tensor:
    return torch.softmax(torch.randn(*shape), dim)


CE_INDEX = {"logits": "f32[B, 10]", "label": "i64[B]"}
CE_SEQ = {"logits": "f32[B, T, 7]", "label": "i64[B, T]"}
PAIR = {"pred": "f32[B, 2, 5]", "target": "f32[B, 2, 5]"}
GAUSS = {"mu": "f32[B, 6]", "logvar": "f32[B, 6]"}


def class_indices() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(BATCH, 10), torch.randint(0, 10, (BATCH,))


def sequence_indices() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(BATCH, 4, 7), torch.randint(0, 7, (BATCH, 4))


def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(BATCH, 2, 5), torch.randn(BATCH, 2, 5)


def probability_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions in [0.01, 0.99] (BCE's log stays finite), targets in [0, 1)."""
    return torch.rand(BATCH, 2, 5) * 0.98 + 0.01, torch.rand(BATCH, 2, 5)


def logit_pair() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(BATCH, 2, 5) * 3, torch.rand(BATCH, 2, 5)


def gaussian() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(BATCH, 6), torch.randn(BATCH, 6)


# (id, input declarations, stage, inputs, the quantity written out in torch)
FORMS = [
    ("ce", CE_INDEX, "cross_entropy", class_indices, lambda x, t: nll(x, t, 1).mean()),
    ("ce_axis_last", CE_SEQ, "cross_entropy(axis=-1)", sequence_indices, lambda x, t: nll(x, t, -1).mean()),
    ("ce_axis_2", CE_SEQ, "cross_entropy(axis=2)", sequence_indices, lambda x, t: nll(x, t, 2).mean()),
    ("ce_probabilities", {"logits": "f32[B, 10]", "p": "f32[B, 10]"}, "cross_entropy",
     lambda: (torch.randn(BATCH, 10), probabilities(BATCH, 10, dim=1)),
     lambda x, p: -(p * logp(x, 1)).sum(1).mean()),
    ("ce_probabilities_axis_last", {"logits": "f32[B, T, 7]", "p": "f32[B, T, 7]"}, "cross_entropy(axis=-1)",
     lambda: (torch.randn(BATCH, 4, 7), probabilities(BATCH, 4, 7, dim=-1)),
     lambda x, p: -(p * logp(x, -1)).sum(-1).mean()),
    ("ce_smoothing", CE_INDEX, "cross_entropy(smoothing=0.1)", class_indices,
     lambda x, t: (0.9 * nll(x, t, 1) - 0.1 * logp(x, 1).mean(1)).mean()),
    ("ce_sum", CE_SEQ, 'cross_entropy(axis=-1, reduce="sum")', sequence_indices,
     lambda x, t: nll(x, t, -1).sum() / BATCH),
    ("ce_sum_smoothing_images", {"logits": "f32[B, 4, 3, 5, 5]", "label": "i64[B, 3, 5, 5]"},
     'cross_entropy(smoothing=0.2, reduce="sum")',
     lambda: (torch.randn(BATCH, 4, 3, 5, 5), torch.randint(0, 4, (BATCH, 3, 5, 5))),
     lambda x, t: (0.8 * nll(x, t, 1) - 0.2 * logp(x, 1).mean(1)).sum() / BATCH),
    ("mse", PAIR, "mse", pair, lambda p, t: ((p - t) ** 2).mean()),
    ("mse_sum", PAIR, 'mse(reduce="sum")', pair, lambda p, t: ((p - t) ** 2).sum() / BATCH),
    ("l1", PAIR, "l1", pair, lambda p, t: (p - t).abs().mean()),
    ("l1_sum", PAIR, 'l1(reduce="sum")', pair, lambda p, t: (p - t).abs().sum() / BATCH),
    ("bce", PAIR, "bce", probability_pair, lambda p, t: -(t * p.log() + (1 - t) * (1 - p).log()).mean()),
    ("bce_sum", PAIR, 'bce(reduce="sum")', probability_pair,
     lambda p, t: -(t * p.log() + (1 - t) * (1 - p).log()).sum() / BATCH),
    ("bce_logits", PAIR, "bce_logits", logit_pair,
     lambda x, t: -(t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x)).mean()),
    ("bce_logits_sum", PAIR, 'bce_logits(reduce="sum")', logit_pair,
     lambda x, t: -(t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x)).sum() / BATCH),
    ("kl_normal", GAUSS, "kl_normal", gaussian, lambda mu, lv: -0.5 * (1 + lv - mu ** 2 - lv.exp()).sum() / BATCH),
    ("kl_normal_mean", GAUSS, 'kl_normal(reduce="mean")', gaussian,
     lambda mu, lv: -0.5 * (1 + lv - mu ** 2 - lv.exp()).mean()),
    ("accuracy", CE_INDEX, "accuracy", lambda: (torch.randn(BATCH * 10, 10), torch.randint(0, 10, (BATCH * 10,))),
     lambda x, t: (x.argmax(1) == t).float().mean()),
    ("accuracy_axis_last", CE_SEQ, "accuracy(axis=-1)",
     lambda: (torch.randn(BATCH, 40, 7), torch.randint(0, 7, (BATCH, 40))),
     lambda x, t: (x.argmax(-1) == t).float().mean()),
]


@pytest.mark.parametrize("inputs,stage,make,expected", [f[1:] for f in FORMS], ids=[f[0] for f in FORMS])
def test_the_torch_form_computes_the_quantity(tmp_path, inputs, stage, make, expected):
    torch.manual_seed(0)
    values = make()
    got = run_stage(tmp_path, inputs, stage, values)
    want = expected(*values)
    assert got.shape == () and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_kl_normal_is_the_kl_divergence_of_torch_distributions(tmp_path):
    torch.manual_seed(1)
    mu, logvar = torch.randn(BATCH, 6), torch.randn(BATCH, 6)
    posterior = torch.distributions.Normal(mu, (logvar / 2).exp())
    prior = torch.distributions.Normal(torch.zeros(6), torch.ones(6))
    want = torch.distributions.kl_divergence(posterior, prior).sum(1).mean()  # nats per example
    torch.testing.assert_close(run_stage(tmp_path, GAUSS, "kl_normal", (mu, logvar)), want)


def test_accuracy_counts_the_arg_max_hits(tmp_path):
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 5.0], [4.0, 0.0, 1.0]])
    label = torch.tensor([0, 1, 2, 2])  # the last one misses
    got = run_stage(tmp_path, {"logits": "f32[B, 3]", "label": "i64[B]"}, "accuracy", (logits, label))
    assert got.item() == 0.75


def test_bits_are_nats_over_ln_2_and_the_import_is_written(tmp_path):
    torch.manual_seed(2)
    path = write(tmp_path, spec(CE_INDEX, ["nll = (logits, label) -> cross_entropy", "output bits = nll -> bits"]))
    logits, label = torch.randn(BATCH, 10), torch.randint(0, 10, (BATCH,))
    got = torch_module(path)(logits, label)
    torch.testing.assert_close(got, nll(logits, label, 1).mean() / math.log(2))
    lines = torch_source(path).splitlines()
    assert "import math" in lines
    assert "        bits = nll / math.log(2)  # ()" in lines


def test_to_levels_floors_and_clamps_to_integer_classes(tmp_path):
    x = torch.tensor([[0.0, 0.5, 0.999, 1.0, 1.5, -0.2]])
    got = run_stage(tmp_path, {"x": "f32[B, 6]"}, "to_levels(256)", (x,))
    assert got.dtype == torch.int64
    assert got.tolist() == [[0, 128, 255, 255, 255, 0]]
    x = torch.rand(BATCH, 4, 4)
    got = run_stage(tmp_path, {"x": "f32[B, 4, 4]"}, "to_levels(8)", (x,))
    assert got.flatten().tolist() == [min(int(v * 8), 7) for v in x.flatten().tolist()]


def test_to_levels_in_a_sequential_block_is_its_helper_layer(tmp_path):
    """A single-chain block becomes an nn.Sequential, which holds the op's module (ToLevels)."""
    block = spec({"x": "f32[B, 1, 4, 4]"}, ["output y = x -> sigmoid -> to_levels(levels)"], "Quantize(levels=16)")
    text = block + spec({"x": "f32[B, 1, 4, 4]"}, ["output y = x -> q: Quantize(4)"])
    path = write(tmp_path, text)
    assert "ToLevels(levels)" in torch_source(path)
    x = torch.randn(BATCH, 1, 4, 4)
    got = torch_module(path)(x)
    assert torch.equal(got, (torch.sigmoid(x) * 4).floor().clamp(0, 3).long())


def test_detach_stops_the_gradient_and_keeps_the_values(tmp_path):
    path = write(tmp_path, spec({"pred": "f32[B, 4]", "target": "f32[B, 4]"},
                                ["fixed = target -> detach", "output loss = (pred, fixed) -> mse"]))
    pred, target = torch.randn(BATCH, 4, requires_grad=True), torch.randn(BATCH, 4, requires_grad=True)
    loss = torch_module(path)(pred, target)
    loss.backward()
    assert target.grad is None
    torch.testing.assert_close(pred.grad, 2 * (pred - target).detach() / pred.numel())
    torch.testing.assert_close(loss, ((pred - target) ** 2).mean())


def test_the_generated_forms_read_as_torch(tmp_path):
    body = ["output a = (logits, label) -> cross_entropy(smoothing=0.1)",
            'output b = (seq, tokens) -> cross_entropy(axis=-1, reduce="sum")',
            "output c = (logits, label) -> accuracy",
            "output d = (mu, logvar) -> kl_normal",
            "output e = image -> to_levels(256)"]
    inputs = {**CE_INDEX, "seq": "f32[B, T, 7]", "tokens": "i64[B, T]", **GAUSS, "image": "f32[B, 1, 8, 8]"}
    lines = [line.strip() for line in torch_source(write(tmp_path, spec(inputs, body))).splitlines()]
    for expected in ["a = F.cross_entropy(logits, label, label_smoothing=0.1)  # ()",
                     'b = F.cross_entropy(seq.movedim(-1, 1), tokens, reduction="sum") / seq.shape[0]  # ()',
                     "c = (logits.argmax(1) == label).float().mean()  # ()",
                     "d = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]  # ()",
                     "e = (image * 256).floor().clamp(0, 255).long()  # (B, 1, 8, 8)"]:
        assert expected in lines


# --- scalars through the pipeline ----------------------------------------------------------------------

VAE_INPUTS = {"x_hat": "f32[B, 1, 8, 8]", "image": "f32[B, 1, 8, 8]", **GAUSS}
VAE_BODY = ['rec = (x_hat, image) -> bce(reduce="sum")', "kl = (mu, logvar) -> kl_normal",
            "output loss = (rec, kl) -> add", "output half = (rec, kl) -> sub -> scale(0.5)",
            "output product = (rec, kl) -> mul"]


def test_scalar_terms_combine_with_add_sub_mul_and_scale(tmp_path):
    result = compile_text(spec(VAE_INPUTS, VAE_BODY), tmp_path)
    assert result.ok, result.diagnostics
    graph = result.graphs["N"]
    assert [str(graph.values[v].type) for _, v in graph.outputs] == ["f32()"] * 3
    torch.manual_seed(3)
    x_hat, image = torch.rand(BATCH, 1, 8, 8) * 0.98 + 0.01, torch.rand(BATCH, 1, 8, 8)
    mu, logvar = torch.randn(BATCH, 6), torch.randn(BATCH, 6)
    loss, half, product = torch_module(tmp_path / "t.arch")(x_hat, image, mu, logvar)
    rec = F.binary_cross_entropy(x_hat, image, reduction="sum") / BATCH
    kl = -0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp()) / BATCH
    for got, want in zip((loss, half, product), (rec + kl, (rec - kl) * 0.5, rec * kl), strict=True):
        assert got.shape == ()
        torch.testing.assert_close(got, want)


def test_scalar_shape_comments_in_the_emitted_forward(tmp_path):
    lines = [line.strip() for line in torch_source(write(tmp_path, spec(VAE_INPUTS, VAE_BODY))).splitlines()]
    assert "loss = rec + kl  # ()" in lines
    assert "half = half * 0.5  # ()" in lines


def test_summary_lists_scalars_with_nonzero_costs(tmp_path, capsys):
    from dlc.cli import main

    path = write(tmp_path, spec(VAE_INPUTS, VAE_BODY))
    assert main(["summary", str(path), "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [(layer["op"], layer["output_shapes"]) for layer in layers] == [
        ("bce", ["()"]), ("kl_normal", ["()"]), ("add", ["()"]), ("sub", ["()"]), ("scale", ["()"]), ("mul", ["()"])]
    assert layers[0]["flops"] == 4 * 2 * 64 and layers[1]["flops"] == 3 * 2 * 6  # B=1
    assert main(["summary", str(path)]) == 0
    assert "kl_normal" in capsys.readouterr().out


def test_costs_are_nonzero_except_detach():
    from dlc.compiler.ir.types import TensorType

    x = TensorType("f32", (Dim.sym("B"), Dim.const(10)))
    label = TensorType("i64", (Dim.sym("B"),))
    attrs = {"axis": 1, "smoothing": 0.0, "reduce": "mean", "levels": 4, "ignore": None}
    for name, ins in [("cross_entropy", [x, label]), ("accuracy", [x, label]), ("mse", [x, x]), ("l1", [x, x]),
                      ("bce", [x, x]), ("bce_logits", [x, x]), ("kl_normal", [x, x]), ("bits", [x]),
                      ("to_levels", [x]), ("detach", [x])]:
        op = OPS[name]
        used = {p.name: attrs[p.name] for p in op.params}
        flops = op.flops(used, ins, op.infer(used, ins)).evaluate({"B": 2})
        assert (flops == 0) == (name == "detach"), (name, flops)


# --- refusals: located diagnostics naming both shapes --------------------------------------------------

REFUSALS = [
    ("one_hot_width", {"logits": "f32[B, 10]", "target": "f32[B, 5]"}, "cross_entropy",
     ["5 classes on axis 1", "f32(B, 5)", "have 10", "f32(B, 10)"]),
    ("one_hot_width_axis_last", {"logits": "f32[B, T, 10]", "target": "f32[B, T, 4]"}, "cross_entropy(axis=-1)",
     ["4 classes on axis -1", "f32(B, T, 4)", "f32(B, T, 10)"]),
    ("index_target_shape", {"logits": "f32[B, 10]", "target": "i64[B, 3]"}, "cross_entropy",
     ["i64(B, 3)", "(B,)", "f32(B, 10)"]),
    ("index_target_symbolic", {"logits": "f32[B, T, 10]", "target": "i64[B, S]"}, "cross_entropy(axis=2)",
     ["i64(B, S)", "(B, T)"]),
    ("index_target_int32", {"logits": "f32[B, 10]", "target": "i32[B]"}, "cross_entropy", ["i32(B,)", "i64"]),
    ("float_indices", {"logits": "f32[B, 10]", "target": "f32[B]"}, "cross_entropy",
     ["f32(B,)", "f32(B, 10)", "class indices must be i64"]),
    ("integer_logits", {"logits": "i64[B, 10]", "target": "i64[B]"}, "cross_entropy",
     ["floating-point logits", "i64(B, 10)"]),
    ("class_axis_is_the_batch", {"logits": "f32[B, 10]", "target": "i64[10]"}, "cross_entropy(axis=0)",
     ["class axis 0", "batch dim 0"]),
    ("mse_shapes", {"pred": "f32[B, 4]", "target": "f32[B, 5]"}, "mse", ["f32(B, 4)", "f32(B, 5)"]),
    ("mse_no_broadcasting", {"pred": "f32[B, 4]", "target": "f32[B, 1]"}, "mse", ["f32(B, 4)", "f32(B, 1)"]),
    ("bce_integer_target", {"pred": "f32[B, 4]", "target": "i64[B, 4]"}, "bce", ["floating-point target", "i64(B, 4)"]),
    ("kl_shapes", {"mu": "f32[B, 8]", "logvar": "f32[B, 4]"}, "kl_normal", ["mu f32(B, 8)", "logvar f32(B, 4)"]),
    ("accuracy_target", {"logits": "f32[B, T, 7]", "target": "i64[B]"}, "accuracy(axis=-1)",
     ["i64(B,)", "(B, T)"]),
    ("bits_of_integers", {"x": "i64[B]"}, "bits", ["floating-point input", "i64(B,)"]),
    ("to_levels_of_integers", {"x": "u8[B, 4]"}, "to_levels(256)", ["floating-point intensities", "u8(B, 4)"]),
]


@pytest.mark.parametrize("inputs,stage,mentions", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_shape_refusal_is_located_and_names_both_shapes(tmp_path, inputs, stage, mentions):
    names = ", ".join(inputs)
    source = f"({names})" if len(inputs) > 1 else names
    binding = f"  output y = {source} -> "
    result = compile_text(spec(inputs, [binding.strip() + f" {stage}"]), tmp_path)
    (diag,) = result.diagnostics
    assert diag.code == "E0401"
    assert diag.message.startswith(f"shape error in `{stage.split('(')[0]}`: ")
    span = diag.primary.span
    assert (span.line, span.col, span.end_col) == (len(inputs) + 2, len(binding) + 1, len(binding) + 1 + len(stage))
    for text in mentions:
        assert text in diag.message, (text, diag.message)


@pytest.mark.parametrize("chain,mention", [
    ("(logits, label) -> cross_entropy(smoothing=1.0)", "must be in [0, 1)"),
    ('(logits, logits) -> mse(reduce="max")', "expected one of 'mean', 'sum'"),
    ("logits -> to_levels(1)", "must be at least 2"),
])
def test_bad_arguments_are_argument_errors(tmp_path, chain, mention):
    result = compile_text(spec(CE_INDEX, [f"output y = {chain}"]), tmp_path)
    assert [d.code for d in result.diagnostics] == ["E0220"]
    assert mention in result.diagnostics[0].message


def test_symbolic_class_counts_and_lengths_are_accepted(tmp_path):
    inputs = {"logits": "f32[B, T, V]", "label": "i64[B, T]", "p": "f32[B, T, V]"}
    body = ["output a = (logits, label) -> cross_entropy(axis=-1)", "output b = (logits, p) -> cross_entropy(axis=2)",
            "output c = (logits, label) -> accuracy(axis=2)"]
    result = compile_text(spec(inputs, body), tmp_path)
    assert result.ok, [d.message for d in result.diagnostics]
    graph = result.graphs["N"]
    assert [graph.values[v].type.rank for _, v in graph.outputs] == [0, 0, 0]


# --- ONNX ----------------------------------------------------------------------------------------------

def test_detach_bits_and_to_levels_export_to_onnx(tmp_path):
    path = write(tmp_path, spec({"x": "f32[B, 3, 4]"}, ["output lv = x -> sigmoid -> to_levels(16)",
                                                        "output nats = x -> bits", "output same = x -> detach"]))
    model = onnx_vs_torch(path, atol=0, rtol=0)
    assert [n.op_type for n in model.graph.node][:6] == ["Sigmoid", "Mul", "Floor", "Clip", "Cast", "Div"]


def test_losses_have_no_onnx_form(tmp_path):
    from dlc.compiler.checkpoint import random_weights
    from dlc.compiler.emit.onnx import emit_onnx
    from dlc.compiler.errors import EmitError

    result = compile_text(spec(CE_INDEX, ["output loss = (logits, label) -> cross_entropy"]), tmp_path)
    graph = result.graphs["N"]
    with pytest.raises(EmitError) as err:
        emit_onnx(graph, random_weights(graph))
    assert err.value.diag.code == "E0602"
    assert "`cross_entropy` has no faithful ONNX form here: it is a training objective" in err.value.diag.message
