"""`data synthetic(task, n, length, seed)`: built-in sequence-to-sequence tasks on characters.

Three tasks, each a pair (source string, target string) over one small character vocabulary:

- "reverse": a string of 1..`length` lowercase letters, and the same string reversed;
- "sort": a string of 1..`length` lowercase letters, and its letters in alphabetical order;
- "dates": a date written "march 5, 1997" (years 1900-2099), and the same date "1997-03-05"
  (`length` plays no part: sources are at most 18 characters, targets 10).

Fields, PAD-padded on the right (the zoo's spec/seq2seq.arch and spec/transformer.arch call the
first two `src` and `tgt`):
  src     i64 (S,)  the source characters;
  tgt     i64 (T,)  the decoder input: BOS, then the target (the target shifted right);
  tgt_out i64 (T,)  what the decoder predicts at each position: the target, then EOS.
S is `length` (18 for dates) and T the longest target plus one (`length + 1`, 11 for dates).

The vocabulary (in the data set's meta: `tokens`, `vocab`, `pad`, `bos`, `eos`): PAD=0, BOS=1,
EOS=2, then the digits, the lowercase letters, space, comma and hyphen: 42 tokens.

Everything is drawn from `np.random.default_rng(seed)`, never from a training seed. Sources are
distinct, so the split holds out pairs: of the `n` pairs in the order drawn, the last `n // 10`
are test, the `n // 10` before them val, the rest train; no source of val or test is in train.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .data import DataError, Dataset, Field, _dataset, _int_arg, _names

PAD, BOS, EOS = 0, 1, 2
CHARS = "0123456789abcdefghijklmnopqrstuvwxyz ,-"
TOKENS = ("<pad>", "<s>", "</s>", *CHARS)
VOCAB = len(TOKENS)
TASKS = ("reverse", "sort", "dates")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
DATE_SOURCE, DATE_TARGET = 18, 10  # "september 30, 1997", "1997-09-30"
FIRST_DAY, LAST_DAY = datetime.date(1900, 1, 1).toordinal(), datetime.date(2099, 12, 31).toordinal()
PARAMS = {"task": "reverse", "n": 10000, "length": 10, "seed": 0}

_INDEX = {c: i for i, c in enumerate(TOKENS) if len(c) == 1}


def sizes(task: str, length: int) -> tuple[int, int]:
    """(S, T): the source width and the decoder's width (longest target + 1)."""
    if task == "dates":
        return DATE_SOURCE, DATE_TARGET + 1
    return length, length + 1


def encode(text: str) -> list[int]:
    """Token ids of a string of the vocabulary's characters."""
    return [_INDEX[c] for c in text]


def decode(ids: Sequence[int], tokens: Sequence[str] = TOKENS, eos: int = EOS, skip: Sequence[int] = (PAD, BOS)) -> str:
    """The characters of `ids` up to the first EOS, PAD and BOS left out."""
    out = []
    for i in ids:
        i = int(i)
        if i == eos:
            break
        if i not in skip and 0 <= i < len(tokens):
            out.append(tokens[i])
    return "".join(out)


def load_synthetic(args: Mapping[str, Any], base: Path | None = None) -> Dataset:
    """The `synthetic` data set (generated; `base` is unused: it reads no file)."""
    for name in args:
        if name not in PARAMS:
            raise DataError(f"data `synthetic` takes no argument `{name}`; it takes {_names(PARAMS)}")
    args = {**PARAMS, **args}
    task = args["task"]
    if task not in TASKS:
        raise DataError(f"data `synthetic`: `task` is {task!r}; it is one of {_names(TASKS)}")
    n = _int_arg("synthetic", args, "n", minimum=10)
    length = _int_arg("synthetic", args, "length", minimum=1, maximum=200)
    seed = _int_arg("synthetic", args, "seed", minimum=0)
    pairs = _pairs(task, n, length, np.random.default_rng(seed))
    s, t = sizes(task, length)
    src = np.full((n, s), PAD, dtype=np.int64)
    tgt = np.full((n, t), PAD, dtype=np.int64)
    tgt_out = np.full((n, t), PAD, dtype=np.int64)
    for row, (source, target) in enumerate(pairs):
        x, y = encode(source), encode(target)
        src[row, :len(x)] = x
        tgt[row, :len(y) + 1] = [BOS, *y]
        tgt_out[row, :len(y) + 1] = [*y, EOS]
    held = n // 10
    bounds = {"train": (0, n - 2 * held), "val": (n - 2 * held, n - held), "test": (n - held, n)}
    splits = {split: {"src": src[a:b], "tgt": tgt[a:b], "tgt_out": tgt_out[a:b]} for split, (a, b) in bounds.items()}
    fields = (Field("src", "i64", (s,), VOCAB), Field("tgt", "i64", (t,), VOCAB), Field("tgt_out", "i64", (t,), VOCAB))
    meta = {"task": task, "vocab": VOCAB, "tokens": TOKENS, "pad": PAD, "bos": BOS, "eos": EOS, "decode": "chars"}
    return _dataset("synthetic", f"synthetic {task} (n={n}, length={length}, seed={seed})", fields, splits, meta)


def _pairs(task: str, n: int, length: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """n pairs with distinct sources, in the order drawn; DataError when the task has fewer."""
    make = {"reverse": _reverse, "sort": _sort, "dates": _date}[task]
    seen: dict[str, str] = {}
    for _ in range(20 * n + 1000):
        source, target = make(rng, length)
        seen.setdefault(source, target)
        if len(seen) == n:
            return list(seen.items())
    kinds = ("dates from 1900 to 2099" if task == "dates" else f"strings of 1 to {length} letters")
    raise DataError(f"data `synthetic` (task {task!r}) found only {len(seen)} distinct sources among {kinds}, "
                    f"but n={n} asks for {n}; lower `n` or raise `length`")


def _letters(rng: np.random.Generator, length: int) -> str:
    size = int(rng.integers(1, length + 1))
    return "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), size))


def _reverse(rng: np.random.Generator, length: int) -> tuple[str, str]:
    source = _letters(rng, length)
    return source, source[::-1]


def _sort(rng: np.random.Generator, length: int) -> tuple[str, str]:
    source = _letters(rng, length)
    return source, "".join(sorted(source))


def _date(rng: np.random.Generator, length: int) -> tuple[str, str]:
    day = datetime.date.fromordinal(int(rng.integers(FIRST_DAY, LAST_DAY + 1)))
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}", day.isoformat()
