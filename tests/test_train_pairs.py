"""Siamese networks: the `digit_pairs` data (runtime/train/data_pairs.py), the pair ops
(compiler/ops/metric_learning.py), the verification show (runtime/train/measures/pairs.py) and
the zoo's definitions in spec/siamese.arch.

Pairs are checked against scikit-learn's own digits (labels and pixels by source index), the ops
against the formulas written out in torch and PyTorch's own losses, the threshold search and the
AUC against brute force and scikit-learn, and a short run's summary.json against the figures
recomputed from its best weights. Runs go in this process on one thread (as tests/test_train_zoo.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import ROOT, compile_text, onnx_vs_torch, train_here
from dlc.compiler.ir.train import options
from dlc.compiler.passes.cost import count_costs
from dlc.compiler.pipeline import compile_file
from dlc.runtime.train import data as datasets
from dlc.runtime.train.measures.pairs import accuracy_at, best_threshold, pair_scores, roc_auc

SPEC = ROOT / "spec" / "siamese.arch"
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def pairs() -> datasets.Dataset:
    return datasets.load("digit_pairs", {"size": 8, "pairs": 600, "eval_pairs": 300})


def _train(spec: Path, out: Path, *flags: str) -> None:
    code, err = train_here(spec, out, *flags)
    assert code == 0, err


# --- the data ---------------------------------------------------------------------------------------


def test_pairs_are_balanced_labelled_right_and_drawn_within_each_split(pairs):
    from sklearn.datasets import load_digits

    digits = load_digits()
    assert [(f.name, f.dtype, f.shape) for f in pairs.fields] == [("x1", "f32", (1, 8, 8)), ("x2", "f32", (1, 8, 8)),
                                                                 ("same", "f32", ())]
    used = {}
    for split, n in zip(SPLITS, (600, 300, 300), strict=True):
        arrays, sources = pairs.splits[split], pairs.meta["sources"][split]
        assert pairs.size(split) == n and sources.shape == (n, 2)
        assert arrays["same"].sum() == n // 2 and set(np.unique(arrays["same"])) == {0.0, 1.0}
        assert 0.2 < arrays["same"][: n // 4].mean() < 0.8  # shuffled: no block of one kind
        labels = digits.target[sources]
        np.testing.assert_array_equal(arrays["same"], (labels[:, 0] == labels[:, 1]).astype(np.float32))
        np.testing.assert_array_equal(pairs.meta["digits"][split], labels)
        np.testing.assert_array_equal(arrays["x1"][:, 0], digits.images[sources[:, 0]].astype(np.float32) / 16)
        np.testing.assert_array_equal(arrays["x2"][:, 0], digits.images[sources[:, 1]].astype(np.float32) / 16)
        assert (sources[:, 0] != sources[:, 1]).all()
        assert len({tuple(sorted(p)) for p in sources.tolist()}) == n  # no pair twice
        used[split] = set(sources.ravel().tolist())
    assert not used["train"] & used["test"] and not used["train"] & used["val"] and not used["val"] & used["test"]
    again = datasets.load("digit_pairs", {"size": 8, "pairs": 600, "eval_pairs": 300})
    np.testing.assert_array_equal(again.meta["sources"]["test"], pairs.meta["sources"]["test"])  # seeded


def test_pair_counts_are_checked(tmp_path):
    with pytest.raises(datasets.DataError, match="even `pairs`"):
        datasets.load("digit_pairs", {"size": 8, "pairs": 7})
    with pytest.raises(datasets.DataError, match="the val split has 270 images"):
        datasets.load("digit_pairs", {"size": 8, "pairs": 8, "eval_pairs": 20000})
    with pytest.raises(datasets.DataError, match="no argument `seq`"):
        datasets.load("digit_pairs", {"seq": 8})
    text = SPEC.read_text().replace("pairs=4096, eval_pairs=512", "pairs=4095, eval_pairs=512", 1)
    result = compile_text(text, tmp_path)
    (diag,) = result.diagnostics
    assert diag.code == "E0702" and "needs an even integer >= 2, got `4095`" in diag.message


# --- the ops ----------------------------------------------------------------------------------------

OPS_SPEC = """network P(m=0.7) {
  input a: f32[B, 6]
  input b: f32[B, 6]
  input y: f32[B]
  d = (a, b) -> pair_distance
  s = (a, b) -> cosine_similarity(dim=1)
  output distance = d
  output contrastive = (d, y) -> contrastive(margin=m)
  output cosine = (s, y) -> cosine_embedding(margin=0.25)
  output above = (s, y) -> verification_accuracy(threshold=0.1)
  output below = (d, y) -> verification_accuracy(threshold=3.0, same_if="below")
}
"""


def test_pair_ops_match_the_formulas(tmp_path):
    from dlc.compiler.emit.torch.api import torch_module

    path = tmp_path / "ops.arch"
    path.write_text(OPS_SPEC)
    module = torch_module(path).eval()
    torch.manual_seed(0)
    a, b = torch.randn(16, 6), torch.randn(16, 6)
    b[:3] = a[:3] + 0.01 * torch.randn(3, 6)  # a few close pairs: margin terms on both sides
    y = (torch.arange(16) % 2 == 0).float()
    distance, contrastive, cosine, above, below = module(a, b, y)
    d = ((a - b + 1e-6) ** 2).sum(1).sqrt()
    torch.testing.assert_close(distance, d)
    torch.testing.assert_close(distance, F.pairwise_distance(a, b))
    hand = (y * d**2 + (1 - y) * torch.clamp(0.7 - d, min=0) ** 2).mean()  # Hadsell et al., y = 1 same
    torch.testing.assert_close(contrastive, hand)
    s = F.cosine_similarity(a, b, dim=1)
    torch.testing.assert_close(cosine, F.cosine_embedding_loss(a, b, 2 * y - 1, margin=0.25))
    torch.testing.assert_close(cosine, (y * (1 - s) + (1 - y) * torch.clamp(s - 0.25, min=0)).mean())
    assert float(above) == float(((s > 0.1) == (y == 1)).float().mean())
    assert float(below) == float(((d < 3.0) == (y == 1)).float().mean())
    assert 0 < float(above) < 1 and 0 < float(below) < 1


def test_pair_distance_exports_to_onnx_and_the_losses_do_not(tmp_path):
    from dlc.compiler.checkpoint import random_weights
    from dlc.compiler.emit.onnx import emit_onnx
    from dlc.compiler.errors import EmitError

    path = tmp_path / "d.arch"
    path.write_text("network D {\n  input a: f32[B, 2, 5]\n  input b: f32[B, 2, 5]\n"
                    "  output d = (a, b) -> pair_distance(dim=-1)\n}\n")
    model = onnx_vs_torch(path)
    assert [n.op_type for n in model.graph.node][:3] == ["Sub", "Add", "ReduceL2"]
    graph = compile_text(OPS_SPEC, tmp_path).graphs["P"]
    with pytest.raises(EmitError) as err:
        emit_onnx(graph, random_weights(graph))
    assert "`contrastive` has no faithful ONNX form here: it is a training objective" in err.value.diag.message


def test_a_pair_loss_refuses_mismatched_shapes(tmp_path):
    text = "network N {\n  input d: f32[B]\n  input y: f32[B, 1]\n  output l = (d, y) -> contrastive\n}\n"
    (diag,) = compile_text(text, tmp_path).diagnostics
    assert "f32(B,)" in diag.message and "f32(B, 1)" in diag.message and "same shape" in diag.message


# --- the threshold and the AUC -------------------------------------------------------------------------


def test_best_threshold_is_the_best_of_all_thresholds_and_auc_is_sklearns():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    same = (rng.random(200) < 0.5).astype(np.float32)
    scores = np.round(rng.normal(same * 1.2, 1.0), 1)  # ties on purpose
    for same_if, oriented in (("above", scores), ("below", -scores)):
        threshold, accuracy = best_threshold(oriented, same, same_if)
        candidates = np.concatenate([np.unique(oriented) - 0.05, [oriented.max() + 0.05]])
        brute = max(accuracy_at(oriented, same, t, same_if) for t in candidates)
        assert accuracy == brute == accuracy_at(oriented, same, threshold, same_if)
        assert roc_auc(oriented, same, same_if) == pytest.approx(roc_auc_score(same, scores))
    assert roc_auc(scores, same, "above") > 0.7


# --- the zoo's definitions -----------------------------------------------------------------------------


def test_the_siamese_definitions_check_and_plan(capsys):
    from dlc.cli import main

    assert main(["check", str(SPEC)]) == 0
    result = compile_file(SPEC)
    assert count_costs(result.graphs["SiameseDistance"]).total_params == 1_690_624  # SiameseCosine's
    wanted = {"SiameseDigits": ("SiameseCosine", "cosine_embedding", "above", 28),
              "SiameseDigitsContrastive": ("SiameseDistance", "contrastive", "below", 28),
              "SiameseKochDigits": ("SiameseKoch", "bce", "above", 105)}
    assert set(wanted) <= set(result.trains)
    for name, (network, loss, same_if, size) in wanted.items():
        plan = result.trains[name]
        assert [m.network for m in plan.models] == [network]
        assert (plan.data.kind, options(plan.data.options)["size"]) == ("digit_pairs", size)
        (step,) = plan.steps
        graph, outputs = step.graph, dict(step.graph.outputs)
        assert graph.nodes[graph.value(outputs["loss"]).producer].op == loss
        assert step.higher_is_better == ("accuracy",) and plan.config.best_higher
        (show,) = plan.shows
        assert (show.kind, show.feeds, options(show.options)["same_if"]) == ("verification", ("x1", "x2"), same_if)


KOCH_ON_A_BUDGET = {"pairs=1024, eval_pairs=256": "pairs=8, eval_pairs=8", "batch=16": "batch=2"}  # 105x105 is slow


@pytest.mark.parametrize("name", ["SiameseDigits", "SiameseDigitsContrastive", "SiameseKochDigits"])
def test_the_siamese_definitions_train(tmp_path, name):
    """Two steps of each; Koch et al.'s, at 21 s a step of 16 pairs on one thread, on 2 pairs a step."""
    from safetensors.torch import load_file

    from dlc.compiler.pipeline import compile_network

    spec = SPEC
    if name == "SiameseKochDigits":
        text = SPEC.read_text()
        for old, new in KOCH_ON_A_BUDGET.items():
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        spec = tmp_path / "siamese.arch"
        spec.write_text(text)
    _train(spec, tmp_path / name, "--train", name, "--max-steps", "2")
    (m,) = compile_file(SPEC).trains[name].models
    graph = compile_network(SPEC, m.network, params=dict(m.args))
    saved = load_file(str(tmp_path / name / "last.safetensors"))
    assert sorted((k, tuple(v.shape)) for k, v in saved.items()) == sorted((w.name, tuple(w.shape))
                                                                           for w in graph.weights)
    assert all(torch.isfinite(v).all() for v in saved.values())


TINY = """network Tiny {
  input x1: f32[B, 1, 8, 8]
  input x2: f32[B, 1, 8, 8]
  let tower = Tower()
  a = x1 -> tower
  b = x2 -> tower
  output distance = (a, b) -> pair_distance(dim=1)
}

block Tower {
  input x
  output y = x -> flatten -> fc1: linear(32) -> relu -> fc2: linear(16)
}

train T {
  data digit_pairs(size=8, pairs=512, eval_pairs=128)
  model net = Tiny()
  config batch=32, epochs=2, seed=0, best="accuracy"
  optimizer adam(lr=3e-3)
  input x1: f32[B, 1, 8, 8], x2: f32[B, 1, 8, 8], same: f32[B]
  d = (x1, x2) -> net
  output loss = (d, same) -> contrastive(margin=2.0)
  output accuracy = (d, same) -> verification_accuracy(threshold=1.0, same_if="below")
  show verification(net)
}
"""


@pytest.mark.parametrize(("show", "code", "says"), [
    ('verification(net, same_if="above")', "E0720", "`verification` with `same_if=\"above\"` takes a similarity, "
                                                    "but the pair score it is given is a distance"),
    ('verification(net, target="label")', "E0710", "the objective reads no data field `label` to compare with")])
def test_a_verification_show_that_does_not_fit_is_located(tmp_path, show, code, says):
    text = TINY.replace("show verification(net)", f"show {show}")
    (diag,) = compile_text(text, tmp_path).diagnostics
    assert (diag.code, diag.primary.span.line) == (code, text.splitlines().index(f"  show {show}") + 1)
    assert says in diag.message


def test_the_verification_figures_are_those_of_the_best_weights(tmp_path):
    from safetensors.torch import load_file

    from dlc.compiler.emit.torch.api import torch_module

    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    _train(spec, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    figures = summary["shows"]["verification"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [set(r["shows"]["verification"]) for r in records if r["kind"] == "epoch"] == [set(figures)] * 2
    net = torch_module(spec, model="Tiny").eval()
    net.load_state_dict(load_file(str(tmp_path / "run" / "best.safetensors")))
    data = datasets.load("digit_pairs", {"size": 8, "pairs": 512, "eval_pairs": 128})
    with torch.no_grad():
        val, test = (pair_scores(net, data.splits[s], ("x1", "x2"), 256, torch.device("cpu")) for s in ("val", "test"))
    threshold, _ = best_threshold(val, data.splits["val"]["same"], "below")  # chosen on val ...
    assert figures["threshold"] == pytest.approx(threshold, rel=1e-5)
    accuracy = accuracy_at(test, data.splits["test"]["same"], threshold, "below")  # ... scored on test
    assert figures["accuracy"] == pytest.approx(accuracy) and accuracy > 0.6
    assert figures["auc"] == pytest.approx(roc_auc(test, data.splits["test"]["same"], "below"))
