"""BERT pre-training and fine-tuning (spec/bert.arch, runtime/train/data_bert.py): the built-in data's
masking and next-sentence statistics, the fine-tuning tasks' labels, the definitions as they
compile, a pre-training step whose encoder checkpoint a fine-tuning definition starts from, and the
`masked_lm` measure against the definition's own `accuracy(ignore=-100)` on a tiny configuration.
Runs inside this process (`dlc.cli.main`) on one thread, like tests/test_train_zoo.py."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import train_here
from dlc.compiler.pipeline import compile_file
from dlc.runtime.train import data as datasets
from dlc.runtime.train.data_bert import CLS, IGNORE, MASK, PAD, SEP, SPECIALS, UNK, _encoded

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "bert.arch"
VOCAB, SEQ = 2000, 64  # as the spec's definitions read the data


@pytest.fixture(scope="module")
def pretrain() -> datasets.Dataset:
    return datasets.load("bert", {"task": "pretrain", "seq": SEQ, "vocab": VOCAB})


def _originals(split) -> np.ndarray:
    """The ids before masking: the label where a position was chosen."""
    labels = split["mlm_labels"]
    return np.where(labels != IGNORE, labels, split["input_ids"])


# -- the data -----------------------------------------------------------------------------------


def test_masking_chooses_15_percent_and_replaces_80_10_10(pretrain):
    ids, labels = pretrain.splits["train"]["input_ids"], pretrain.splits["train"]["mlm_labels"]
    eligible = (ids != PAD) & (ids != CLS) & (ids != SEP)
    chosen = labels != IGNORE
    assert chosen.sum() > 20000
    assert abs(chosen.sum() / eligible.sum() - 0.15) < 0.01
    assert chosen.any(axis=1).all()  # at least one per sequence
    shown, target = ids[chosen], labels[chosen]
    masked, kept = shown == MASK, shown == target
    swapped = ~masked & ~kept
    assert abs(masked.mean() - 0.8) < 0.015
    assert abs(kept.mean() - 0.1) < 0.015
    assert abs(swapped.mean() - 0.1) < 0.015
    assert shown[swapped].min() >= len(SPECIALS) and shown[swapped].max() < VOCAB  # random regular tokens


def test_labels_are_ignored_outside_the_chosen_positions(pretrain):
    for split in pretrain.splits.values():
        ids, labels, types = split["input_ids"], split["mlm_labels"], split["token_type_ids"]
        chosen = labels != IGNORE
        assert (labels[~chosen] == IGNORE).all() and (labels[chosen] >= 0).all()
        assert not chosen[np.isin(ids, (PAD, CLS, SEP))].any()  # never a special position
        assert not (ids == MASK)[~chosen].any()  # [MASK] only where a label says what it hides
        assert not np.isin(labels[chosen], (PAD, CLS, SEP, MASK)).any()
        assert (ids[:, 0] == CLS).all()
        for row, ty in zip(ids, types, strict=True):  # [CLS] A [SEP] (types 0) B [SEP] (types 1), padding 0
            first, second = np.flatnonzero(row == SEP)[:2]
            assert (ty[:first + 1] == 0).all() and (ty[first + 1:second + 1] == 1).all() and (ty[second + 1:] == 0).all()
            assert (row[second + 1:] == PAD).all()


def test_next_sentence_pairs_are_balanced_and_true(pretrain):
    words, parts = _encoded(VOCAB)
    for name, split in pretrain.splits.items():
        nsp = split["nsp_label"]
        assert (nsp == 0).sum() == len(nsp) // 2  # exactly half "is next" (0), as Hugging Face labels it
        sentences = parts[name]
        starts: dict[tuple, list[int]] = {}
        for i, (_, s) in enumerate(sentences):
            starts.setdefault(tuple(s[:3]), []).append(i)
        for row, label in zip(_originals(split), nsp, strict=True):
            first, second = np.flatnonzero(row == SEP)[:2]
            a, b = row[1:first], row[first + 1:second]
            found = [i for i in starts.get(tuple(a[:3]), []) if np.array_equal(sentences[i][1][:len(a)], a)]
            assert found, "A is a sentence of its split (possibly cut at its end)"
            follows = any(i + 1 < len(sentences) and sentences[i + 1][0] == sentences[i][0]
                          and np.array_equal(sentences[i + 1][1][:len(b)], b) for i in found)
            assert follows == (label == 0)


def test_the_vocabulary_and_the_fine_tuning_tasks():
    words, _ = _encoded(VOCAB)
    assert words[:5] == SPECIALS and len(words) == VOCAB == len(set(words))
    span = datasets.load("bert", {"task": "span", "seq": SEQ, "vocab": VOCAB})
    for split in span.splits.values():
        for row, ty, start, end in zip(split["input_ids"], split["token_type_ids"], split["start_positions"],
                                       split["end_positions"], strict=True):
            q_end = np.flatnonzero(row == SEP)[0]
            question = row[1:q_end]
            assert 1 <= len(question) <= 3 and UNK not in question
            assert np.array_equal(row[start:end + 1], question) and (ty[start:end + 1] == 1).all()
    pair = datasets.load("bert", {"task": "pair", "seq": SEQ, "vocab": VOCAB})
    accept = datasets.load("bert", {"task": "acceptability", "seq": SEQ, "vocab": VOCAB})
    for d in (pair, accept):
        assert d.meta["vocab"] == list(words)
        for split in d.splits.values():
            assert (split["label"] == 1).sum() == len(split["label"]) // 2
    assert (accept.splits["val"]["token_type_ids"] == 0).all()
    again = datasets.load("bert", {"task": "acceptability", "seq": SEQ, "vocab": VOCAB}).splits["val"]
    assert np.array_equal(again["input_ids"], accept.splits["val"]["input_ids"])  # seeded by the data, not the run
    with pytest.raises(datasets.DataError, match="`task` is 'nsp'"):
        datasets.load("bert", {"task": "nsp"})
    with pytest.raises(datasets.DataError, match="takes no argument `mask`"):
        datasets.load("bert", {"mask": 0.2})


# -- the definitions ----------------------------------------------------------------------------


def _run(spec: Path, out: Path, *flags: str) -> str:
    """`dlc train` in this process on one thread, which must exit 0; its stderr."""
    code, err = train_here(spec, out, *flags)
    assert code == 0, err
    return err


@pytest.fixture(scope="module")
def compiled():
    result = compile_file(SPEC)
    assert result.ok, [d.message for d in result.diagnostics]
    return result


def test_the_definitions_compile_to_their_plans(compiled):
    result = compiled
    assert sorted(result.trains) == ["BertAcceptability", "BertPair", "BertPretrain", "BertSpan"]
    pre = result.trains["BertPretrain"]
    assert [(m.name, m.network, m.weights_from) for m in pre.models] == [("bert", "Bert", None),
                                                                         ("heads", "BertPretrainHeads", None)]
    assert pre.data.kind == "bert" and pre.config.best == "mlm_accuracy" and pre.config.best_higher
    assert [(s.kind, s.model, s.levels) for s in pre.shows] == [("masked_lm", "bert", VOCAB)]
    for name in ("BertPair", "BertSpan", "BertAcceptability"):
        bert = next(m for m in result.trains[name].models if m.name == "bert")
        assert bert.network == "Bert" and bert.weights_from == "runs/bert/best.bert.safetensors"
        assert dict(bert.args) == dict(next(m for m in pre.models if m.name == "bert").args)


def test_fine_tuning_starts_from_the_pre_trained_encoder(tmp_path, monkeypatch, compiled):
    monkeypatch.chdir(tmp_path)
    _run(SPEC, tmp_path / "pre", "--train", "BertPretrain", "--max-steps", "1")
    encoder = load_file(str(tmp_path / "pre" / "last.bert.safetensors"))
    bert = compiled.trains["BertPretrain"].models[0]
    assert sorted((k, tuple(v.shape)) for k, v in encoder.items()) == \
        sorted((name, tuple(shape)) for name, shape, _ in bert.weights)  # the checkpoint is exactly the Bert
    heads = load_file(str(tmp_path / "pre" / "last.heads.safetensors"))
    assert heads["decoder.weight"].shape == (VOCAB, 128) and heads["seq_relationship.weight"].shape == (2, 128)
    (tmp_path / "runs" / "bert").mkdir(parents=True)
    shutil.copy(tmp_path / "pre" / "last.bert.safetensors", tmp_path / "runs" / "bert" / "best.bert.safetensors")
    stderr = _run(SPEC, tmp_path / "pair", "--train", "BertPair", "--max-steps", "1")
    assert "kept its fresh initialization" not in stderr  # every encoder weight fits
    tuned = load_file(str(tmp_path / "pair" / "last.bert.safetensors"))
    assert sorted(tuned) == sorted(encoder)
    # one AdamW step of lr 2e-4 (warming up) moves a weight by little; a fresh N(0, 0.02) draw would not be close
    drift = max(float((tuned[k] - encoder[k]).abs().max()) for k in encoder)
    assert drift < 2e-3
    assert float((tuned["embeddings.word_embeddings.weight"] - encoder["embeddings.word_embeddings.weight"])
                 .abs().max()) > 0  # and it did train


TINY = """import "bert.arch"  # a copy beside it: imports stay below the importing file's directory

train TinyPretrain {{
  data bert(task="pretrain", seq=16, vocab=64)
  model bert = Bert(vocab=64, max_pos=16, d=16, layers=1, heads=2, d_ff=32)
  model heads = BertPretrainHeads(vocab=64, d=16)
  config batch=128, epochs=1, seed=0, best="mlm_accuracy", eval_batch=512
  optimizer adamw(lr=3e-3)
  input input_ids: i64[B, 16], token_type_ids: i64[B, 16], mlm_labels: i64[B, 16], nsp_label: i64[B]
  hidden, pooled = (input_ids, token_type_ids) -> bert
  mlm_logits, nsp_logits = (hidden, pooled) -> heads
  mlm_loss = (mlm_logits, mlm_labels) -> cross_entropy(axis=-1, ignore=-100)
  nsp_loss = (nsp_logits, nsp_label) -> cross_entropy
  output loss = (mlm_loss, nsp_loss) -> add
  output mlm_accuracy = (mlm_logits, mlm_labels) -> accuracy(axis=-1, ignore=-100)
  output nsp_accuracy = (nsp_logits, nsp_label) -> accuracy
  show masked_lm(bert)
}}
"""


def test_masked_lm_measure_agrees_with_the_ignoring_accuracy(tmp_path):
    spec = tmp_path / "tiny.arch"
    shutil.copy(SPEC, tmp_path / "bert.arch")
    spec.write_text(TINY.format())
    _run(spec, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    figures = summary["shows"]["masked_lm"]
    data = datasets.load("bert", {"task": "pretrain", "seq": 16, "vocab": 64})
    test = data.splits["test"]
    assert figures["masked_tokens"] == (test["mlm_labels"] != IGNORE).sum()
    assert figures["unigram_accuracy"] == pytest.approx(data.meta["unigram_accuracy"]["test"])
    assert 0 < figures["unigram_accuracy"] < 0.5
    # the test split is one evaluation batch: the batch mean of `accuracy(ignore=-100)` is the per-token share
    assert summary["test"]["mlm_accuracy"] == pytest.approx(figures["mlm_accuracy"], abs=1e-6)
    assert summary["test"]["nsp_accuracy"] == pytest.approx(figures["nsp_accuracy"], abs=1e-6)
    parts = [figures[k] for k in ("mask_accuracy", "random_accuracy", "kept_accuracy")]
    assert min(parts) >= 0 and max(parts) <= 1 and figures["mlm_top5"] >= figures["mlm_accuracy"]
    record = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("masked_lm" in r.get("shows", {}) for r in record if r.get("kind") != "test")  # on val each epoch
