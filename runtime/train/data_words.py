"""The `skipgram` data set: word2vec's (center, context, negatives) examples, read with numpy only.

The text (CPython's own documentation, `pydoc_data.topics`, as `data text` reads it, or the user's
file at `path`) is lowercased and cut into words: runs of letters, digits and underscores that
start with a letter or an underscore (`[a-z_][a-z0-9_]*`), so identifiers such as `__init__` stay
one word. The word stream is split in order, before anything else: the first 90 % of the words
train, the next 5 % val, the last 5 % test (5 % is `n // 20` words), so the split is fixed by the
text alone.

The vocabulary is the `vocab` most frequent words of the train split (ties by the word, in
alphabetical order), each seen at least `min_count` times there; word id = rank (0: the most
frequent). Fewer such words than `vocab` is a DataError, so the embedding tables that read the ids
have exactly one row per word. Words outside the vocabulary are dropped from every split before
the windows are taken, as word2vec does. The course notes mention no subsampling of frequent
words, so there is none.

Examples: for each word of a split (the center c) and each word at most `window` positions before
or after it in that split (the context o), one example, in the order of the centers and then of
the offsets -window..-1, 1..window. Each example carries `negatives` words k drawn from the noise
distribution P_n(w) ∝ count(w)^(3/4) (train counts), with replacement, from
`np.random.default_rng(0)` (train, then val, then test), so the data is the same in every run; a
negative may be the center or the context word, as in word2vec's own sampler.

Fields: `center` i64[], `context` i64[], `negatives` i64[K], ids in [0, vocab). Meta: `vocab` (the
number of words), `words` (the vocabulary in id order), `counts` (their train counts), `noise` (P_n
in id order), `window`, and `kept` (words of each split left after dropping the unknown ones).
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .data import (SPLITS, DataError, Dataset, Field, _dataset, _int_arg, _names, _path_text, _python_docs, _reason,
                   _resolve)

WORD = re.compile(r"[a-z_][a-z0-9_]*")  # on lowercased text: words and identifiers
NOISE_POWER = 0.75  # P_n(w) ∝ count(w)^(3/4), Mikolov et al. 2013
SKIPGRAM_ARGS: Mapping[str, Any] = {"path": None, "window": 5, "negatives": 5, "vocab": 1000, "min_count": 5}


def load_skipgram(args: Mapping[str, Any], base: Path) -> Dataset:
    """The skip-gram examples of `args` (names of SKIPGRAM_ARGS; the rest default); relative paths from `base`."""
    for name in args:
        if name not in SKIPGRAM_ARGS:
            raise DataError(f"data `skipgram` takes no argument `{name}`; it takes {_names(SKIPGRAM_ARGS)}")
    args = {**SKIPGRAM_ARGS, **args}
    window = _int_arg("skipgram", args, "window", minimum=1)
    k = _int_arg("skipgram", args, "negatives", minimum=1)
    size = _int_arg("skipgram", args, "vocab", minimum=2)
    min_count = _int_arg("skipgram", args, "min_count", minimum=1)
    source, text = _read_text(args["path"], base)
    words = tokenize(text)
    parts = _split_words(words, source)
    vocabulary, counts = _vocabulary(parts["train"], size, min_count, source)
    noise = noise_distribution(counts)
    index = {w: i for i, w in enumerate(vocabulary)}
    rng = np.random.default_rng(0)
    splits, kept = {}, {}
    for split in SPLITS:
        ids = np.array([index[w] for w in parts[split] if w in index], dtype=np.int64)
        center, context = window_pairs(ids, window)
        if len(center) == 0:
            raise DataError(f"data `skipgram` ({source}) has no word pairs in split `{split}` ({len(ids)} known "
                            f"words there); give a longer text")
        negatives = rng.choice(size, size=(len(center), k), p=noise).astype(np.int64)  # (N, K)
        splits[split] = {"center": center, "context": context, "negatives": negatives}
        kept[split] = len(ids)
    fields = (Field("center", "i64", (), size), Field("context", "i64", (), size),
              Field("negatives", "i64", (k,), size))
    meta = {"vocab": size, "words": tuple(vocabulary), "counts": tuple(int(c) for c in counts),
            "noise": tuple(float(p) for p in noise), "window": window, "kept": kept}
    return _dataset("skipgram", source, fields, splits, meta)


def tokenize(text: str) -> list[str]:
    """The lowercase words of `text`, in order."""
    return WORD.findall(text.lower())


def window_pairs(ids: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(center, context) ids of every pair at most `window` apart, by center position, then offset."""
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])  # (2W,)
    positions = np.arange(len(ids))[:, None] + offsets[None, :]  # (N, 2W)
    inside = (positions >= 0) & (positions < len(ids))
    centers = np.broadcast_to(np.arange(len(ids))[:, None], positions.shape)
    return ids[centers[inside]], ids[positions[inside]]


def noise_distribution(counts: np.ndarray) -> np.ndarray:
    """P_n(w) ∝ count(w)^(3/4), in float64, summing to 1."""
    weights = np.asarray(counts, dtype=np.float64) ** NOISE_POWER
    return weights / weights.sum()


def _read_text(path: Any, base: Path) -> tuple[str, str]:
    if path is None:
        try:
            return "pydoc_data.topics", _python_docs().decode("utf-8")
        except DataError:
            raise DataError("data `skipgram` (pydoc_data.topics) is not installed with this Python; "
                            "give `path` to a text file") from None
    source = _path_text("skipgram", path)
    try:
        return source, _resolve(path, base).read_bytes().decode("utf-8", errors="replace")
    except OSError as error:
        raise DataError(f"data `skipgram` ({source}) cannot be read: {_reason(error)}") from None


def _split_words(words: list[str], source: str) -> dict[str, list[str]]:
    """The fixed split of the word stream, in order: 90 % train, 5 % val, 5 % test."""
    held = len(words) // 20
    if held == 0:
        raise DataError(f"data `skipgram` ({source}) has {len(words)} words, but val and test get 5 % each: "
                        f"it needs at least 20 words")
    return {"train": words[:len(words) - 2 * held], "val": words[len(words) - 2 * held:len(words) - held],
            "test": words[len(words) - held:]}


def _vocabulary(train: list[str], size: int, min_count: int, source: str) -> tuple[list[str], np.ndarray]:
    """The `size` most frequent train words (ties alphabetical) and their counts; DataError if fewer than
    `size` words are seen `min_count` times."""
    ranked = sorted(Counter(train).items(), key=lambda item: (-item[1], item[0]))
    frequent = [(w, c) for w, c in ranked if c >= min_count]
    if len(frequent) < size:
        raise DataError(f"data `skipgram` ({source}) has {len(frequent)} words seen at least {min_count} times "
                        f"in its train split ({len(train)} words), fewer than vocab={size}; give a smaller `vocab` "
                        f"or a smaller `min_count`")
    chosen = frequent[:size]
    return [w for w, _ in chosen], np.array([c for _, c in chosen], dtype=np.int64)
