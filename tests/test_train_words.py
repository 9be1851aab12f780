"""word2vec on pydoc words: `data skipgram`, the negative-sampling objective, `show neighbours`.

The data set on CPython's documentation (counts, the noise distribution count^(3/4)) and on tiny
texts of this file's own (the window pairs, written out by hand; dropped words; the fixed split);
the objective of spec/word2vec.arch against the notes' formula on random ids; `dlc check`, a few
steps of the zoo's definition, and one epoch of a small definition whose neighbours table is
compared with the one recomputed from its saved weights; E0719 for the shows that cannot be made.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dlc.cli import main
from dlc.compiler.ir.train import options
from dlc.compiler.pipeline import compile_file
from dlc.runtime.train.data import DataError, load
from dlc.runtime.train.modules import build_steps

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "word2vec.arch"
LISTED = ["file", "function", "list", "string", "error"]


@pytest.fixture(scope="module")
def docs():
    return load("skipgram", {})


def _dlc(*args: str) -> tuple[int, str]:
    """The CLI in this process, on one thread: its exit status and stderr."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        torch.set_num_threads(threads)
    return code, err.getvalue()


# -- the data set ---------------------------------------------------------------------------------


def test_pydoc_words_fields_vocabulary_and_counts(docs):
    window, vocab = 5, 1000
    assert [(f.name, f.dtype, f.shape, f.classes) for f in docs.fields] == [
        ("center", "i64", (), vocab), ("context", "i64", (), vocab), ("negatives", "i64", (5,), vocab)]
    words, counts = docs.meta["words"], np.array(docs.meta["counts"])
    assert len(words) == len(set(words)) == vocab == docs.meta["vocab"]
    assert words[0] == "the" and all(w == w.lower() for w in words)
    assert np.all(np.diff(counts) <= 0) and counts[-1] >= 5  # by frequency, each seen min_count times
    for split in ("train", "val", "test"):
        arrays = docs.splits[split]
        assert docs.size(split) > 10_000
        assert all(a.dtype == np.int64 and 0 <= a.min() and a.max() < vocab for a in arrays.values())
    # every kept train word is the center of 2 * window pairs, but for the `window` words at each end
    as_center = np.bincount(docs.splits["train"]["center"], minlength=vocab)
    assert as_center.sum() == 2 * window * docs.meta["kept"]["train"] - window * (window + 1)
    assert np.all(np.abs(as_center - 2 * window * counts) <= window * (window + 1))


def test_negatives_follow_count_to_the_three_quarters(docs):
    counts = np.array(docs.meta["counts"], dtype=np.float64)
    drawn = np.bincount(docs.splits["train"]["negatives"].ravel(), minlength=len(counts)) / \
        docs.splits["train"]["negatives"].size
    noise = counts ** 0.75 / (counts ** 0.75).sum()
    unigram = counts / counts.sum()
    assert np.allclose(docs.meta["noise"], noise)
    assert 0.5 * np.abs(drawn - noise).sum() < 0.01  # total variation from P_n
    assert 0.5 * np.abs(drawn - unigram).sum() > 0.1  # and far from the plain unigram distribution
    assert drawn[0] == pytest.approx(noise[0], rel=0.02)  # "the": 2.6 M draws
    assert drawn[0] < 0.6 * unigram[0]  # the 3/4 power flattens the most frequent word


def test_window_pairs_of_a_tiny_text(tmp_path):
    # 41 words: train the first 37 (zeta once: below min_count=2, dropped), val 2, test 2
    (tmp_path / "tiny.txt").write_text("Alpha beta zeta GAMMA delta." + " alpha beta gamma delta" * 9)
    data = load("skipgram", {"path": "tiny.txt", "window": 2, "negatives": 3, "vocab": 4, "min_count": 2},
                base=tmp_path)
    assert data.meta["words"] == ("alpha", "beta", "delta", "gamma")  # all seen 9 times: alphabetical
    alpha, beta, delta, gamma = range(4)
    assert data.meta["kept"] == {"train": 36, "val": 2, "test": 2}
    train = data.splits["train"]
    pairs = list(zip(train["center"].tolist(), train["context"].tolist(), strict=True))
    # alpha beta [zeta dropped] gamma delta alpha ...: alpha's contexts beta, gamma; beta's alpha, gamma, delta
    assert pairs[:8] == [(alpha, beta), (alpha, gamma), (beta, alpha), (beta, gamma), (beta, delta),
                         (gamma, alpha), (gamma, beta), (gamma, delta)]
    stream = [alpha, beta, gamma, delta] * 9
    expected = [(stream[i], stream[i + o]) for i in range(len(stream)) for o in (-2, -1, 1, 2)
                if 0 <= i + o < len(stream)]
    assert pairs == expected
    for split, words in (("val", (alpha, beta)), ("test", (gamma, delta))):  # the last 5 % each, in order
        got = data.splits[split]
        assert list(zip(got["center"].tolist(), got["context"].tolist(), strict=True)) == [words, words[::-1]]
        assert got["negatives"].shape == (2, 3)
    again = load("skipgram", {"path": str(tmp_path / "tiny.txt"), "window": 2, "negatives": 3, "vocab": 4,
                              "min_count": 2})
    assert all(np.array_equal(again.splits[s][f], data.splits[s][f]) for s in data.splits for f in data.splits[s])


def test_too_few_words_for_the_vocabulary(tmp_path):
    (tmp_path / "tiny.txt").write_text("one two two three three three " * 10)
    with pytest.raises(DataError, match=r"^data `skipgram` \(tiny.txt\) has 2 words seen at least 15 times in its "
                                        r"train split \(54 words\), fewer than vocab=3"):
        load("skipgram", {"path": "tiny.txt", "vocab": 3, "min_count": 15}, base=tmp_path)
    with pytest.raises(DataError, match="takes no argument `size`; it takes `path`, `window`"):
        load("skipgram", {"size": 3})


# -- the objective --------------------------------------------------------------------------------


def test_loss_is_the_negative_sampling_objective():
    result = compile_file(SPEC)
    assert result.ok, [d.message for d in result.diagnostics]
    plan = result.trains["SkipGramText"]
    torch.manual_seed(0)
    steps, models = build_steps(result, plan)
    net = models["net"]
    with torch.no_grad():  # moderate scores: both signs of every term matter
        for table in (net.in_embed.weight, net.out_embed.weight):
            table.normal_(0.0, 0.15)
    gen = torch.Generator().manual_seed(1)
    center, context = torch.randint(1000, (64,), generator=gen), torch.randint(1000, (64,), generator=gen)
    negatives = torch.randint(1000, (64, 5), generator=gen)
    loss, positive, negative = steps["main"](center, context, negatives)
    with torch.no_grad():
        v, u, uk = net.in_embed.weight[center], net.out_embed.weight[context], net.out_embed.weight[negatives]
        log_sigmoid = torch.nn.functional.logsigmoid
        pos = log_sigmoid((u * v).sum(-1))  # log σ(u_o·v_c)
        neg = log_sigmoid(-torch.einsum("bkd,bd->bk", uk, v)).sum(-1)  # Σ_k log σ(-u_k·v_c)
    assert loss.item() == pytest.approx(float(-(pos + neg).mean()), rel=1e-5)
    assert (positive.item(), negative.item()) == pytest.approx((-pos.mean().item(), -neg.mean().item()), rel=1e-5)
    loss.backward()
    rows = torch.unique(center)
    assert net.in_embed.weight.grad[rows].abs().sum(1).min() > 0  # the centers' rows get gradients
    others = torch.ones(1000, dtype=torch.bool)
    others[rows] = False
    assert float(net.in_embed.weight.grad[others].abs().max()) == 0.0  # and only they


def test_the_zoo_definition_checks_and_runs_a_few_steps(tmp_path):
    assert _dlc("check", str(SPEC)) == (0, "")
    plan = compile_file(SPEC).trains["SkipGramText"]
    assert (plan.data.kind, options(plan.data.options)["vocab"]) == ("skipgram", 1000)
    assert dict(plan.models[0].args) == {"vocab": 1000, "dim": 100}
    (show,) = plan.shows
    assert (show.kind, show.model, show.child, show.levels) == ("neighbours", "net", "in_embed", 1000)
    assert options(show.options)["words"] == tuple(LISTED)
    code, stderr = _dlc("train", str(SPEC), "--train", "SkipGramText", "-o", str(tmp_path / "run"), "--quiet",
                        "--max-steps", "3")
    assert code == 0 and "stopped after epoch 0" in stderr and "Traceback" not in stderr, stderr
    saved = load_file(str(tmp_path / "run" / "last.safetensors"))
    assert {k: tuple(v.shape) for k, v in saved.items()} == {"in_embed.weight": (1000, 100),
                                                             "out_embed.weight": (1000, 100)}


def test_the_full_softmax_definition_reads_the_vocabulary_as_classes(tmp_path):
    plan = compile_file(SPEC).trains["SkipGramSoftmaxText"]
    assert [(i.name, i.classes) for i in plan.data.inputs] == [("center", None), ("context", 1000)]
    assert [s.kind for s in plan.shows] == ["neighbours"]
    smaller = SPEC.read_text().replace("model net = SkipGram(vocab=1000", "model net = SkipGram(vocab=900")
    (tmp_path / "word2vec.arch").write_text(smaller)
    (diag,) = compile_file(tmp_path / "word2vec.arch").diagnostics
    assert diag.code == "E0708" and "has 1000 classes in `context`, but the logits have 900" in diag.message


# -- the neighbours table -------------------------------------------------------------------------

SMALL = """
network Pairs(vocab=60, dim=16) {
  input center: i64[B]
  input context: i64[B]
  input negatives: i64[B, K]
  v = center -> in_embed: embedding(vocab, dim)
  u = context -> out_embed: embedding(vocab, dim)
  n = negatives -> out_embed
  vk = v -> unsqueeze(1)
  output pos = (u, v) -> mul -> sum(dim=-1)
  output neg = (n, vk) -> mul -> sum(dim=-1)
}

train Words {
  data skipgram(path="corpus.txt", window=2, negatives=3, vocab=60, min_count=2)
  model net = Pairs()
  config batch=256, epochs=1
  optimizer adam(lr=1e-2)
  input center: i64[B], context: i64[B], negatives: i64[B, 3]
  pos, neg = (center, context, negatives) -> net
  attract = pos -> scale(-1) -> softplus
  repel = neg -> softplus -> sum(dim=-1)
  output loss = (attract, repel) -> add -> mean(dim=0)
  show neighbours(net.in_embed, words=["the", "function", "zzzz", "is"], k=4)
}
"""


def test_neighbours_table_is_written_and_matches_the_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the data's `path` is read from the current directory
    from pydoc_data.topics import topics
    text = "\n".join(topics[key] for key in sorted(topics))[:20_000]
    (tmp_path / "corpus.txt").write_text(text)
    (tmp_path / "words.arch").write_text(SMALL)
    out = tmp_path / "run"
    code, stderr = _dlc("train", str(tmp_path / "words.arch"), "-o", str(out), "--quiet")
    assert code == 0, stderr
    assert (out / "samples" / "neighbours_epoch001.txt").is_file()
    table = (out / "samples" / "neighbours_test.txt").read_text().splitlines()
    assert table[0].startswith("nearest neighbours by cosine: net.in_embed, test split")
    assert table[1].split() == ["word", "#1", "#2", "#3", "#4"]
    rows = {line.split()[0]: line.split()[1:] for line in table[2:]}
    assert rows["zzzz"] == ["(not", "in", "the", "vocabulary)"]
    data = load("skipgram", {"path": "corpus.txt", "window": 2, "negatives": 3, "vocab": 60, "min_count": 2},
                base=tmp_path)
    words = list(data.meta["words"])
    weights = load_file(str(out / "best.safetensors"))["in_embed.weight"].double().numpy()
    unit = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    listed = [w for w in ("the", "function", "is") if w in words]
    assert listed and set(rows) == {"the", "function", "zzzz", "is"}
    cosines_shown = []
    for word in listed:
        cells = rows[word]
        shown, cosines = cells[0::2], [float(c) for c in cells[1::2]]
        assert word not in shown and len(set(shown)) == 4  # never the word itself, four distinct words
        assert cosines == sorted(cosines, reverse=True)
        similarity = unit @ unit[words.index(word)]
        similarity[words.index(word)] = -np.inf
        best = np.argsort(-similarity, kind="stable")[:4]
        assert shown == [words[j] for j in best]
        assert cosines == pytest.approx(similarity[best].tolist(), abs=1e-3)
        cosines_shown += cosines
    summary = json.loads((out / "summary.json").read_text())
    figures = summary["shows"]["neighbours"]
    assert figures["words_found"] == len(listed)
    assert figures["mean_cosine"] == pytest.approx(np.mean(cosines_shown), abs=1e-3)
    assert -1.0 < figures["random_cosine"] < figures["mean_cosine"]


# -- diagnostics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    (("net.in_embed, words", "net, words"), "`net`: it is the whole model, not one of its embedding tables"),
    (("net.in_embed, words", "net.embed, words"), "`net.embed`: the objective runs no layer of that name"),
    (("vocab=60, dim=16", "vocab=61, dim=16"), "it has 61 rows, but data `skipgram` has a vocabulary of 60 words"),
    (("k=4", "k=60"), "k=60 neighbours, but a word of a vocabulary of 60 has 59 others"),
    (("v = center -> in_embed: embedding(vocab, dim)", "v = center -> in_embed: embedding(vocab, dim) -> "
      "proj: linear(dim)"), None),
])
def test_a_show_that_cannot_be_made_is_e0719(tmp_path, change, message):
    spec = SMALL.replace(*change)
    if message is None:  # a linear layer named as the table
        spec = spec.replace("net.in_embed, words", "net.proj, words")
        message = "`net.proj`: it is a `linear` layer, not an embedding table"
    (tmp_path / "bad.arch").write_text(spec)
    result = compile_file(tmp_path / "bad.arch")
    assert [d.code for d in result.diagnostics] == ["E0719"], [d.message for d in result.diagnostics]
    assert message in result.diagnostics[0].message
    assert result.diagnostics[0].primary.span.line == spec.splitlines().index(
        next(line for line in spec.splitlines() if "show neighbours" in line)) + 1


def test_neighbours_needs_a_data_set_with_words(tmp_path):
    spec = SMALL.replace('data skipgram(path="corpus.txt", window=2, negatives=3, vocab=60, min_count=2)',
                         'data npz("pairs.npz")')
    (tmp_path / "bad.arch").write_text(spec)
    (message,) = [d.message for d in compile_file(tmp_path / "bad.arch").diagnostics]
    assert message == "`neighbours` cannot read `net.in_embed`: data `npz` has no vocabulary of words"
