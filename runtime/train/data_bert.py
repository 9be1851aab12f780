"""The `bert` data set: BERT pre-training (masked LM + next-sentence prediction) and three small
fine-tuning tasks, all from CPython's own documentation (`pydoc_data.topics`, no network).

Text -> sentences: each topic (in sorted key order) is cut into paragraphs at blank lines; lines
that only draw (`*****`, `+----+`, table rows starting with `+` or `|`) are dropped, the rest of a
paragraph is joined and cut into sentences after `.`, `!` or `?`. A sentence is kept with at least
4 tokens. The sentences, in order, are split by position: the first 90 % train, the next 5 % val,
the last 5 % test (about 3,600 / 200 / 200 of 4,000).

Tokenizer (word level, deterministic): lower-cased text, a token is a run of letters, a run of
digits, or a run of one repeated other character (`"`, `(`, `__`, `...`). The vocabulary is the
five specials [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then the `vocab - 5` most frequent
tokens of the train split (ties by the token's text); the others read as [UNK] (about 2 % of the
tokens at the default 2,000; the train split has about 3,200 distinct tokens, so a larger `vocab`
holds them all and leaves the remaining ids unused). Every task with the
same `vocab` has the same vocabulary, so a fine-tuning task reads ids as its pre-training did.

Tasks (`task=`), each a sequence of `seq` ids with `token_type_ids` (0 for `[CLS] A [SEP]`, 1 for
`B [SEP]`, 0 for padding), padded with [PAD]; a pair longer than `seq` loses tokens from the end of
its longer sentence until it fits (Hugging Face's truncate_seq_pair):

- `pretrain`: `[CLS] A [SEP] B [SEP]` with B the sentence after A (in its topic) for half of the
  examples (nsp_label 0, "is next", as Hugging Face's next_sentence_label) and a random sentence of
  another topic of the same split, never a copy of the true next one, for the other half
  (nsp_label 1); exactly half of each split (an odd count rounds "is next" down). Masked LM: of the tokens of A and B, round(15 %) (at least one)
  are chosen; of those, 80 % become [MASK], 10 % a random token (not a special) and 10 % stay;
  `mlm_labels` holds the original id at the chosen positions and -100 (IGNORE) elsewhere.
  Masks are drawn once and fixed per example and split (seeded by the split), not redrawn per
  epoch; `copies=N` repeats the train split N times with other masks and other random B's
  (BERT's "duplication factor"). meta: `unigram_id` (the train split's most frequent token) and
  `unigram_accuracy` per split (the share of masked tokens that are that token: the accuracy of
  always answering it). The masks are vectorized per split: each row ranks its A and B tokens by
  uniform keys and takes the first round(15 %).
- `pair` (sentence-pair classification, "do the two say the same thing?"): B is a noisy copy of A
  (label 1) or a noisy copy of another sentence of the same topic (label 0); noise drops each
  token with probability 0.15 (keeping at least 2) and swaps one adjacent pair. Balanced as above.
- `span` (extractive QA): `[CLS] Q [SEP] P [SEP]`, P a sentence and Q a phrase of 1 to 3 tokens
  that occurs exactly once in P (no [UNK] in it); `start_positions` / `end_positions` are the
  positions of that occurrence in the input (classes: `seq`).
- `acceptability` (single sentence, CoLA-like): `[CLS] S [SEP]`, label 1 for the sentence as
  written, 0 for the sentence with a window of 3 to 6 tokens shuffled (so that it reads otherwise).

Every random draw comes from `np.random.default_rng` seeded by (task, split): two runs read the same
examples, whatever their training seed.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .data import DataError, Dataset, Field, _dataset, _int_arg, _python_docs

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIALS))
IGNORE = -100  # mlm_labels at positions that were not chosen (cross_entropy / accuracy `ignore=-100`)
TASKS = ("pretrain", "pair", "span", "acceptability")
SPLIT_SHARE = {"train": 0.90, "val": 0.05, "test": 0.05}
MASK_SHARE, MASK_TOKEN, MASK_RANDOM = 0.15, 0.8, 0.1  # chosen share; of those: [MASK], random (rest kept)
MIN_SEQ, MIN_VOCAB = 16, 16
MIN_SENTENCE = 4  # tokens
ARGS: Mapping[str, Any] = {"task": "pretrain", "seq": 64, "vocab": 2000, "copies": 1}

_TOKEN = re.compile(r"[a-z]+|[0-9]+|([^\sa-z0-9])\1*")
_DRAWING = re.compile(r"[*=~\-^+| ]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SEEDS = {"pretrain": 17, "pair": 23, "span": 29, "acceptability": 31}


def tokenize(text: str) -> list[str]:
    """Lower-cased word-level tokens: letter runs, digit runs, runs of one other character."""
    return [m.group(0) for m in _TOKEN.finditer(text.lower())]


def sentences(topics: Mapping[str, str]) -> list[tuple[int, list[str]]]:
    """(topic index, tokens) of every kept sentence, topics in sorted key order."""
    out = []
    for t, key in enumerate(sorted(topics)):
        for para in re.split(r"\n\s*\n", topics[key]):
            lines = [line.strip() for line in para.splitlines()]
            lines = [line for line in lines if line and not _DRAWING.fullmatch(line) and line[0] not in "+|"]
            for sentence in _SENTENCE_END.split(" ".join(lines)):
                tokens = tokenize(sentence)
                if len(tokens) >= MIN_SENTENCE:
                    out.append((t, tokens))
    return out


def build_vocab(token_lists: Sequence[Sequence[str]], size: int) -> list[str]:
    """The specials, then the `size - 5` most frequent tokens (ties by text)."""
    counts = Counter(tok for tokens in token_lists for tok in tokens)
    ranked = sorted(counts, key=lambda tok: (-counts[tok], tok))
    return [*SPECIALS, *ranked[:size - len(SPECIALS)]]


@lru_cache(maxsize=1)
def _documentation() -> list[tuple[int, list[str]]]:
    _python_docs()  # the same DataError when pydoc_data is missing
    from pydoc_data.topics import topics

    return sentences(topics)


@lru_cache(maxsize=4)
def _encoded(vocab: int) -> tuple[tuple[str, ...], dict[str, list[tuple[int, np.ndarray]]]]:
    """(the vocabulary, split -> [(topic, ids)]) of the documentation's sentences."""
    kept = _documentation()
    n = len(kept)
    n_val, n_test = int(n * SPLIT_SHARE["val"]), int(n * SPLIT_SHARE["test"])
    bounds = {"train": (0, n - n_val - n_test), "val": (n - n_val - n_test, n - n_test), "test": (n - n_test, n)}
    words = build_vocab([tokens for _, tokens in kept[:bounds["train"][1]]], vocab)
    index = {w: i for i, w in enumerate(words)}
    encoded = [(t, np.array([index.get(tok, UNK) for tok in tokens], dtype=np.int64)) for t, tokens in kept]
    return tuple(words), {split: encoded[a:b] for split, (a, b) in bounds.items()}


def load_bert(given: Mapping[str, Any], base: Path | None = None) -> Dataset:
    """The data set `bert(task, seq, vocab, copies)` (defaults in ARGS)."""
    for name in given:
        if name not in ARGS:
            raise DataError(f"data `bert` takes no argument `{name}`; it takes {', '.join(f'`{a}`' for a in ARGS)}")
    args = {**ARGS, **given}
    task = args["task"]
    if task not in TASKS:
        raise DataError(f"data `bert`: `task` is {task!r}; it is one of {', '.join(f'`{t}`' for t in TASKS)}")
    seq = _int_arg("bert", args, "seq", minimum=MIN_SEQ)
    vocab = _int_arg("bert", args, "vocab", minimum=MIN_VOCAB)
    copies = _int_arg("bert", args, "copies", minimum=1)
    words, parts = _encoded(vocab)
    make = {"pretrain": _pretrain, "pair": _pair, "span": _span, "acceptability": _acceptability}[task]
    splits = {}
    for k, (split, part) in enumerate(parts.items()):
        rng = np.random.default_rng([_SEEDS[task], k])
        rounds = copies if split == "train" else 1
        made = [make(part, seq, len(words), rng) for _ in range(rounds)]
        splits[split] = {f: np.concatenate([m[f] for m in made]) for f in made[0]}
    fields = [Field("input_ids", "i64", (seq,), len(words)), Field("token_type_ids", "i64", (seq,), 2)]
    meta: dict[str, Any] = {"vocab": list(words), "task": task, "specials": dict(zip(SPECIALS, range(5), strict=True)),
                            "sentences": {split: len(part) for split, part in parts.items()}}
    if task == "pretrain":
        fields += [Field("mlm_labels", "i64", (seq,), len(words)), Field("nsp_label", "i64", (), 2)]
        top = _unigram(parts["train"])
        meta["unigram_id"], meta["unigram_token"] = top, words[top]
        meta["unigram_accuracy"] = {s: _unigram_accuracy(a["mlm_labels"], top) for s, a in splits.items()}
        meta["classes"] = ["is next", "random"]
    elif task == "span":
        fields += [Field("start_positions", "i64", (), seq), Field("end_positions", "i64", (), seq)]
    else:
        fields += [Field("label", "i64", (), 2)]
        meta["classes"] = ["different", "same"] if task == "pair" else ["unacceptable", "acceptable"]
    return _dataset("bert", f"pydoc_data.topics, task {task}", tuple(fields), splits, meta)


def _unigram(part) -> int:
    """The most frequent regular token of a split (ties: the lower id)."""
    counts = np.bincount(np.concatenate([ids for _, ids in part]))
    counts[:len(SPECIALS)] = -1
    return int(counts.argmax())


def _unigram_accuracy(labels: np.ndarray, top: int) -> float:
    chosen = labels[labels != IGNORE]
    return float((chosen == top).mean()) if chosen.size else 0.0


# ---------------------------------------------------------------------------------------------
# Sequences


def _pack(a: np.ndarray, b: np.ndarray | None, seq: int) -> tuple[np.ndarray, np.ndarray, int]:
    """`[CLS] a [SEP] (b [SEP])`, truncated from the end of the longer part and padded to `seq`:
    (input ids, token types, offset of b)."""
    a, b = list(a), None if b is None else list(b)
    room = seq - (2 if b is None else 3)
    while len(a) + (0 if b is None else len(b)) > room:
        (a if b is None or len(a) >= len(b) else b).pop()
    ids = [CLS, *a, SEP] + ([] if b is None else [*b, SEP])
    types = [0] * (len(a) + 2) + ([] if b is None else [1] * (len(b) + 1))
    pad = seq - len(ids)
    return (np.array(ids + [PAD] * pad, dtype=np.int64), np.array(types + [0] * pad, dtype=np.int64), len(a) + 2)


def _balanced(n: int, rng: np.random.Generator) -> np.ndarray:
    """n booleans, exactly n // 2 of them true, in a random order."""
    return rng.permutation(n) < n // 2


def _other(i: int, part, rng: np.random.Generator, same_topic: bool) -> int:
    """A random sentence index of `part` other than i and i + 1, of i's topic or of another one
    (by rejection, up to 64 draws; then any other sentence)."""
    topic = part[i][0]
    j = i
    for _ in range(64):
        j = int(rng.integers(len(part)))
        if j not in (i, i + 1) and (part[j][0] == topic) == same_topic:
            return j
    while len(part) > 2 and j in (i, i + 1):
        j = int(rng.integers(len(part)))
    return j


def _stack(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {f: np.stack([np.asarray(r[f], dtype=np.int64) for r in rows]) for f in rows[0]}


def _pretrain(part, seq: int, vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    firsts = [i for i in range(len(part) - 1) if part[i + 1][0] == part[i][0]]  # A with a next sentence
    if len(firsts) < 2:
        raise DataError(f"data `bert` (pydoc_data.topics) has {len(firsts)} sentence pairs in a split; "
                        f"next-sentence prediction needs at least 2")
    is_next = _balanced(len(firsts), rng)
    rows = []
    for i, nxt in zip(firsts, is_next, strict=True):
        b = part[i + 1][1]
        for _ in range(8 if not nxt else 0):  # pydoc repeats passages: a copy of the true next is no random B
            b = part[_other(i, part, rng, same_topic=False)][1]
            if not np.array_equal(b, part[i + 1][1]):
                break
        ids, types, _ = _pack(part[i][1], b, seq)
        rows.append({"input_ids": ids, "token_type_ids": types, "nsp_label": 0 if nxt else 1})
    out = _stack(rows)
    out["input_ids"], out["mlm_labels"] = _mask(out["input_ids"], vocab, rng)
    return out


def _mask(ids: np.ndarray, vocab: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking of sequences (N, T): (the masked ids, the labels: original ids where chosen, IGNORE
    elsewhere). Each row chooses round(15 %) of its tokens (at least one), uniformly without replacement."""
    eligible = (ids != PAD) & (ids != CLS) & (ids != SEP)  # the tokens of A and B
    count = np.maximum(1, np.round(MASK_SHARE * eligible.sum(1))).astype(np.int64)
    keys = np.where(eligible, rng.random(ids.shape), np.inf)
    rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    chosen = rank < count[:, None]
    labels = np.where(chosen, ids, IGNORE)
    u = rng.random(ids.shape)
    random_ids = rng.integers(len(SPECIALS), vocab, size=ids.shape)
    out = np.where(chosen & (u < MASK_TOKEN), MASK, ids)
    out = np.where(chosen & (u >= MASK_TOKEN) & (u < MASK_TOKEN + MASK_RANDOM), random_ids, out)
    return out, labels


def _noisy(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drop each token with probability 0.15 (keeping at least 2), then swap one adjacent pair."""
    keep = rng.random(len(ids)) >= 0.15
    if keep.sum() < 2:
        keep[:2] = True
    out = ids[keep].copy()
    j = int(rng.integers(len(out) - 1))
    out[j], out[j + 1] = out[j + 1], out[j]
    return out


def _pair(part, seq: int, vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    same = _balanced(len(part), rng)
    rows = []
    for i, s in enumerate(same):
        other = part[i][1] if s else part[_other(i, part, rng, same_topic=True)][1]
        ids, types, _ = _pack(part[i][1], _noisy(other, rng), seq)
        rows.append({"input_ids": ids, "token_type_ids": types, "label": int(s)})
    return _stack(rows)


def _span(part, seq: int, vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = []
    for _, ids in part:
        passage = ids[:seq - 3 - 3]  # room for [CLS] Q [SEP] P [SEP] with a question of up to 3 tokens
        length = int(rng.integers(1, 4))
        grams = [tuple(passage[s:s + length]) for s in range(len(passage) - length + 1)]
        counts = Counter(grams)
        starts = [s for s, g in enumerate(grams) if counts[g] == 1 and UNK not in g]
        if not starts:
            continue
        s = starts[int(rng.integers(len(starts)))]
        question = passage[s:s + length]
        packed, types, offset = _pack(question, passage, seq)
        rows.append({"input_ids": packed, "token_type_ids": types, "start_positions": offset + s,
                     "end_positions": offset + s + length - 1})
    return _stack(rows)


def _acceptability(part, seq: int, vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    good = _balanced(len(part), rng)
    rows = []
    for (_, ids), g in zip(part, good, strict=True):
        ids = ids[:seq - 2]
        if not g:
            ids = _shuffled(ids, rng)
        packed, types, _ = _pack(ids, None, seq)
        rows.append({"input_ids": packed, "token_type_ids": types, "label": int(g)})
    return _stack(rows)


def _shuffled(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sentence with a window of 3 to 6 tokens in another order (the first that differs of a few tries)."""
    out = ids.copy()
    width = min(len(ids), int(rng.integers(3, 7)))
    for _ in range(8):
        start = int(rng.integers(len(ids) - width + 1))
        window = rng.permutation(ids[start:start + width])
        if not np.array_equal(window, ids[start:start + width]):
            out[start:start + width] = window
            return out
    return ids[::-1].copy() if not np.array_equal(ids[::-1], ids) else ids.copy()
