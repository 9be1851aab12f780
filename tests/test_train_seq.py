"""Sequence to sequence training (issue 17): the synthetic tasks, `ignore` in cross_entropy and
accuracy, greedy and beam decoding, BLEU, and the zoo's `train` definitions for seq2seq and the
Transformer.
"""
from __future__ import annotations

import datetime
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import train_here
from dlc.compiler.emit.torch.api import torch_module, torch_source
from dlc.compiler.ir.train import options
from dlc.compiler.passes.train import DATASETS, builtin_fields
from dlc.compiler.pipeline import compile_file
from dlc.runtime.train import data as datasets
from dlc.runtime.train import data_seq
from dlc.runtime.train.data_seq import BOS, EOS, decode
from dlc.runtime.train.measures.seq import beam_search, bleu, greedy

PAD = 0


def _loss_spec(stage: str) -> str:
    return ("network N {\n  input logits: f32[B, T, 7]\n  input label: i64[B, T]\n"
            f"  output y = (logits, label) -> {stage}\n}}\n")


def _run_loss(tmp_path, stage: str, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    path = tmp_path / "loss.arch"
    path.write_text(_loss_spec(stage))
    return torch_module(path).eval()(logits, label)


def _padded_labels() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    logits, label = torch.randn(3, 5, 7), torch.randint(1, 7, (3, 5))
    label[0, 3:] = PAD
    label[2, 1:] = PAD
    return logits, label


@pytest.mark.parametrize("stage, reduce", [("cross_entropy(axis=-1, ignore=0)", "mean"),
                                           ('cross_entropy(axis=-1, ignore=0, reduce="sum")', "sum")])
def test_cross_entropy_ignore_matches_torch(tmp_path, stage, reduce):
    logits, label = _padded_labels()
    got = _run_loss(tmp_path, stage, logits, label)
    nll = -torch.log_softmax(logits, -1).gather(-1, label.unsqueeze(-1)).squeeze(-1)
    kept = label != PAD
    want = nll[kept].mean() if reduce == "mean" else nll[kept].sum() / 3
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got, F.cross_entropy(logits.movedim(-1, 1), label, ignore_index=PAD,
                                                    reduction=reduce) / (1 if reduce == "mean" else 3))
    assert not torch.allclose(got, _run_loss(tmp_path, stage.replace(", ignore=0", ""), logits, label))


def test_accuracy_ignore_counts_only_kept_targets(tmp_path):
    logits, label = _padded_labels()
    logits[0, 3:, PAD] = 100.0  # padded positions predicted right: they must not count
    hits = logits.argmax(-1) == label
    got = _run_loss(tmp_path, "accuracy(axis=-1, ignore=0)", logits, label)
    kept = label != PAD
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, hits[kept].float().mean())
    plain = _run_loss(tmp_path, "accuracy(axis=-1)", logits, label)
    torch.testing.assert_close(plain, hits.float().mean())
    assert not torch.allclose(got, plain)


def test_ignore_forms_in_the_emitted_source(tmp_path):
    path = tmp_path / "loss.arch"
    path.write_text(_loss_spec("cross_entropy(axis=-1, ignore=0)").replace(
        "}\n", "  output a = (logits, label) -> accuracy(axis=-1, ignore=0)\n}\n"))
    source = torch_source(path)
    assert "ignore_index=0" in source
    assert "!= 0" in source


@pytest.mark.parametrize("op", ["cross_entropy(axis=-1", "accuracy(axis=-1"])
def test_ignore_none_is_no_ignore(tmp_path, op):
    logits, label = _padded_labels()
    given = _run_loss(tmp_path, f"{op}, ignore=none)", logits, label)
    torch.testing.assert_close(given, _run_loss(tmp_path, f"{op})", logits, label))
    assert "ignore" not in torch_source(tmp_path / "loss.arch").split("def forward")[1]


def test_ignore_refuses_probability_targets(tmp_path):
    path = tmp_path / "loss.arch"
    path.write_text("network N {\n  input logits: f32[B, 7]\n  input p: f32[B, 7]\n"
                    "  output y = (logits, p) -> cross_entropy(ignore=0)\n}\n")
    with pytest.raises(Exception, match="ignore"):
        torch_module(path)


# -- the synthetic tasks -------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _load(task: str, n: int = 300, length: int = 6, seed: int = 0) -> datasets.Dataset:
    return datasets.load("synthetic", {"task": task, "n": n, "length": length, "seed": seed})


def _rows(d: datasets.Dataset, split: str):
    s = d.splits[split]
    return zip(s["src"], s["tgt"], s["tgt_out"], strict=True)


@pytest.mark.parametrize("task", ["reverse", "sort", "dates"])
def test_synthetic_pairs_padding_and_shift(task):
    d = _load(task)
    assert {s: d.size(s) for s in datasets.SPLITS} == {"train": 240, "val": 30, "test": 30}
    assert d.meta["tokens"][:3] == ("<pad>", "<s>", "</s>") and d.meta["vocab"] == len(d.meta["tokens"]) == 42
    want = builtin_fields("synthetic", {**{k: a.default for k, a in DATASETS["synthetic"].items()},
                                        "task": task, "length": 6})
    assert {f.name: ("i64", f.shape, f.classes) for f in d.fields} == want  # the compiler's fields are the data's
    for src, tgt, tgt_out in _rows(d, "train"):
        source, target = decode(src), decode(tgt_out)
        if task == "reverse":
            assert target == source[::-1]
        elif task == "sort":
            assert target == "".join(sorted(source))
        else:
            assert target == datetime.datetime.strptime(source, "%B %d, %Y").date().isoformat()
        n_src, n_tgt = len(source), len(target)
        assert 1 <= n_src and (task == "dates" or n_src <= 6)
        assert (src[:n_src] != 0).all() and (src[n_src:] == 0).all()  # PAD only on the right
        assert tgt[0] == BOS and list(tgt[1:n_tgt + 1]) == list(tgt_out[:n_tgt]) and (tgt[n_tgt + 1:] == 0).all()
        assert tgt_out[n_tgt] == EOS and (tgt_out[n_tgt + 1:] == 0).all()


def test_synthetic_examples_and_held_out_split():
    assert data_seq.encode("ab") == [13, 14] and decode([1, 13, 14, 2, 15, 0]) == "ab"
    d = _load("dates", n=2000)
    sources = {s: {decode(r) for r in d.splits[s]["src"]} for s in datasets.SPLITS}
    assert not (sources["train"] & sources["val"]) and not (sources["train"] & sources["test"])
    assert not (sources["val"] & sources["test"])
    assert any(src.startswith("march ") for src in sources["train"])
    again, other = _load("dates", n=2000), _load("dates", n=2000, seed=1)
    assert all(np.array_equal(d.splits[s][f], again.splits[s][f]) for s in datasets.SPLITS for f in ("src", "tgt"))
    assert not np.array_equal(d.splits["train"]["src"], other.splits["train"]["src"])
    with pytest.raises(datasets.DataError, match="distinct sources"):
        _load("reverse", n=100, length=1)  # 26 one-letter strings
    with pytest.raises(datasets.DataError, match="task"):
        _load("spell")


# -- decoding and BLEU -----------------------------------------------------------------------------

V = 6  # PAD, BOS, EOS, A, B, C
A, B, C = 3, 4, 5


class Bigram(nn.Module):
    """logits(next | src, prefix) = table[last token] (+ a source-dependent shift): any prefix length."""

    def __init__(self, table: torch.Tensor, by_source: bool = False) -> None:
        super().__init__()
        self.table = table
        self.src = nn.Embedding(V, V) if by_source else None

    def forward(self, src: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        logits = self.table[prefix]
        return logits if self.src is None else logits + self.src(src).mean(1, keepdim=True)


def _myopic() -> Bigram:
    p = torch.full((V, V), 1e-6)
    p[BOS, A], p[BOS, B] = 0.6, 0.4  # greedy takes A...
    p[A, EOS], p[A, A], p[A, B] = 0.35, 0.33, 0.32  # ...after which nothing is likely;
    p[B, EOS] = 0.99  # B EOS is the better sentence
    p[EOS], p[0], p[C] = 1.0, 1.0, 1.0
    return Bigram(p.log())


def test_beam_search_beats_myopic_greedy():
    model, src = _myopic(), torch.zeros((2, 3), dtype=torch.long)
    tokens, score, length = greedy(model, src, BOS, EOS, 0, max_len=4)
    assert tokens[0].tolist() == [A, EOS] and length.tolist() == [2, 2]  # stops once every output ended
    torch.testing.assert_close(score, torch.full((2,), math.log(0.6 / 1.000004) + math.log(0.35 / 1.000004)),
                               rtol=1e-4, atol=1e-4)
    beam_tokens, beam_score, beam_length = beam_search(model, src, BOS, EOS, 0, max_len=4, beam=2)
    assert beam_tokens[0].tolist()[:2] == [B, EOS] and beam_length.tolist() == [2, 2]
    assert (beam_score / beam_length > score / length + 0.2).all()


def test_beam_of_one_is_greedy_and_wider_beams_are_no_worse_here():
    torch.manual_seed(0)
    model = Bigram(torch.randn(V, V) * 2, by_source=True)
    src = torch.randint(1, V, (64, 5))
    tokens, score, length = greedy(model, src, BOS, EOS, 0, max_len=7)
    one = beam_search(model, src, BOS, EOS, 0, max_len=7, beam=1)
    assert torch.equal(one[0], tokens) and torch.equal(one[2], length)
    torch.testing.assert_close(one[1], score)
    wide = beam_search(model, src, BOS, EOS, 0, max_len=7, beam=4)
    assert (wide[1] / wide[2] >= score / length - 1e-5).float().mean() > 0.9
    assert (wide[1] / wide[2] > score / length + 1e-4).any()


def test_bleu_of_references_with_themselves_is_100():
    refs = ["1997-03-05", "olleh", "abcdefg", "zyxwvut"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert bleu(["1997-03-06", "olleh", "abcdxfg", "zyxwvut"], refs) < 90.0
    assert bleu(["", "", "", ""], refs) == 0.0


# -- the zoo's definitions ------------------------------------------------------------------------

ZOO = [("seq2seq.arch", "Seq2SeqReverse", "Seq2Seq"), ("seq2seq.arch", "Seq2SeqDates", "Seq2Seq"),
       ("transformer.arch", "TransformerReverse", "Transformer"),
       ("transformer.arch", "TransformerSort", "Transformer")]


def test_zoo_definitions_check():
    for spec, name, network in ZOO:
        result = compile_file(ROOT / "spec" / spec)
        assert result.ok, [d.message for d in result.diagnostics]
        plan = result.trains[name]
        assert plan.data.kind == "synthetic" and [m.network for m in plan.models] == [network]
        assert [i.name for i in plan.data.inputs] == ["src", "tgt", "tgt_out"]
        (show,) = plan.shows
        widths = (18, 11) if name == "Seq2SeqDates" else (10, 11)  # (S, T) of the task
        assert (show.kind, show.feeds, show.shape, show.levels) == ("translate", ("src", "tgt"), widths, 42)
        assert options(show.options)["beam"] == 4
        (step,) = plan.steps
        losses = [n for n in step.graph.nodes if n.op in ("cross_entropy", "accuracy")]
        assert [dict(n.attrs)["ignore"] for n in losses] == [0, 0]


def _train(spec: Path, out: Path, *flags: str) -> None:
    code, err = train_here(spec, out, *flags)
    assert code == 0, err


TINY = """import "seq2seq.arch"  # copies beside it: imports stay below the importing file's directory
import "transformer.arch"

train TinySeq2Seq {{
  data synthetic(task="reverse", n=120, length=4)
  model net = Seq2Seq(src_vocab=42, tgt_vocab=42, emb=8, hidden=8, units=8, p=0.0)
  config batch=32, epochs=1, seed=0, best="accuracy"
  optimizer adam(lr=3e-3)
  input src: i64[B, 4], tgt: i64[B, 5], tgt_out: i64[B, 5]
  logits = (src, tgt) -> net
  output loss = (logits, tgt_out) -> cross_entropy(axis=-1, ignore=0)
  output accuracy = (logits, tgt_out) -> accuracy(axis=-1, ignore=0)
  show translate(net, beam=3, n=10)
}}

train TinyTransformer {{
  data synthetic(task="dates", n=40)
  model net = Transformer(vocab=42, d=8, heads=2, d_ff=16, n_enc=1, n_dec=1, p=0.0)
  config batch=16, epochs=1, seed=0
  optimizer adam(lr=3e-3)
  input src: i64[B, 18], tgt: i64[B, 11], tgt_out: i64[B, 11]
  logits = (src, tgt) -> net
  output loss = (logits, tgt_out) -> cross_entropy(axis=-1, ignore=0)
  show translate(net, beam=2, n=4)
}}
"""


def test_tiny_definitions_train_and_translate(tmp_path):
    spec = tmp_path / "tiny.arch"
    for name in ("seq2seq.arch", "transformer.arch"):
        shutil.copy(ROOT / "spec" / name, tmp_path / name)
    spec.write_text(TINY.format())
    for name in ("TinySeq2Seq", "TinyTransformer"):
        out = tmp_path / name
        _train(spec, out, "--train", name)
        figures = json.loads((out / "summary.json").read_text())["shows"]["translate"]
        assert set(figures) == {f"{k}_{w}" for k in ("bleu", "exact", "logprob") for w in ("greedy", "beam")}
        assert all(0.0 <= figures[f"{k}_{w}"] <= (100.0 if k == "bleu" else 1.0)
                   for k in ("bleu", "exact") for w in ("greedy", "beam"))
        examples = (out / "samples" / "translate_test.txt").read_text()
        assert examples.count("source:") == (10 if name == "TinySeq2Seq" else 4)
        assert "reference:" in examples and "greedy:" in examples and "beam " in examples


def test_zoo_definition_runs_a_few_steps(tmp_path):
    _train(ROOT / "spec" / "seq2seq.arch", tmp_path / "s2s", "--train", "Seq2SeqReverse", "--max-steps", "2")
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "s2s" / "last.safetensors")
    plan = compile_file(ROOT / "spec" / "seq2seq.arch").trains["Seq2SeqReverse"]
    assert sorted(saved) == sorted(name for name, _, _ in plan.models[0].weights)
    assert saved["out.weight"].shape == (42, 64)
