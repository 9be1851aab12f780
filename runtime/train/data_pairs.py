"""`digit_pairs`: pairs of scikit-learn digits for Siamese networks, half of them same-class.

The images are those of `digits` (runtime/train/data.py: its fixed 1,257 / 270 / 270 split, resized
to `size`), and each split's pairs are drawn from that split's images only, so the validation and
test pairs show images no training pair has shown. Fields, per pair:

  - `x1`, `x2`: f32[1, size, size], the two images;
  - `same`: f32, 1.0 when both show the same digit and 0.0 otherwise (a float, so that the pair
    losses of compiler/ops/metric_learning.py multiply by it directly, and `bce` takes it as is).

`pairs` pairs for train and `eval_pairs` each for val and test, exactly half same-class. They are
drawn once, from `np.random.default_rng` seeded by the split (never by a training seed): a
same-class pair is an image drawn uniformly and a second, other image of its digit; a
different-class pair an image and one of another digit. No unordered pair repeats within a split,
and the pairs come shuffled, so every batch holds both kinds. `meta["sources"][split]` holds each
pair's two indices into scikit-learn's 1,797 images, `meta["digits"][split]` their two digits.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .data import DIGITS_SPLIT, MAX_IMAGE_SIZE, SPLITS, DataError, Dataset, Field, _dataset, _int_arg, _names, _resize, load

PAIR_SEEDS = {"train": 1, "val": 2, "test": 3}  # one fixed stream per split
DEFAULTS = {"size": 28, "pairs": 2048, "eval_pairs": 512}


def load_digit_pairs(args: Mapping[str, Any], base: Path | None = None) -> Dataset:
    """The `digit_pairs` data set (see the module docstring); `args` as `data.load` takes them."""
    for name in args:
        if name not in DEFAULTS:
            raise DataError(f"data `digit_pairs` takes no argument `{name}`; it takes {_names(DEFAULTS)}")
    args = {**DEFAULTS, **args}
    base = Path.cwd() if base is None else Path(base)
    size = _int_arg("digit_pairs", args, "size", minimum=1, maximum=MAX_IMAGE_SIZE)
    counts = {"train": _even(args, "pairs"), "val": _even(args, "eval_pairs"), "test": _even(args, "eval_pairs")}
    digits = load("digits", {"size": 8}, base)  # `_load_digits` at its own 8x8, images in [0, 1]
    indices = _split_indices()
    splits, sources, labels = {}, {}, {}
    for split in SPLITS:
        images, label = digits.splits[split]["image"], digits.splits[split]["label"]
        first, second = draw_pairs(label, counts[split], np.random.default_rng(PAIR_SEEDS[split]), split)
        resized = _resized(images, np.union1d(first, second), size)
        splits[split] = {"x1": np.stack([resized[i] for i in first]), "x2": np.stack([resized[i] for i in second]),
                         "same": (label[first] == label[second]).astype(np.float32)}
        sources[split] = np.stack([indices[split][first], indices[split][second]], axis=1)  # (N, 2)
        labels[split] = np.stack([label[first], label[second]], axis=1)
    shape = (1, size, size)
    fields = (Field("x1", "f32", shape, None), Field("x2", "f32", shape, None), Field("same", "f32", (), None))
    meta = {"classes": ["different", "same"], "sources": sources, "digits": labels}
    return _dataset("digit_pairs", "scikit-learn digits", fields, splits, meta)


def draw_pairs(labels: np.ndarray, n: int, rng: np.random.Generator, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`n` distinct unordered pairs of indices into `labels`, n / 2 same-class, shuffled."""
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    possible_same = sum(len(members) * (len(members) - 1) // 2 for members in by_class.values())
    if n // 2 > possible_same:
        raise DataError(f"data `digit_pairs`: the {split} split has {len(labels)} images, which make only "
                        f"{possible_same} distinct same-class pairs; {n // 2} were asked for (`pairs` / "
                        f"`eval_pairs` at most {2 * possible_same})")
    seen: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int, bool]] = []
    others = {c: np.flatnonzero(labels != c) for c in by_class}
    for same in (True, False):
        wanted = len(pairs) + n // 2
        while len(pairs) < wanted:
            a = int(rng.integers(len(labels)))
            pool = by_class[labels[a]] if same else others[labels[a]]
            b = int(pool[rng.integers(len(pool))])
            key = (min(a, b), max(a, b))
            if a != b and key not in seen:
                seen.add(key)
                pairs.append((a, b, same))
    order = rng.permutation(len(pairs))
    chosen = np.array([pairs[i][:2] for i in order], dtype=np.int64).reshape(-1, 2)
    return chosen[:, 0], chosen[:, 1]


def _resized(images: np.ndarray, used: np.ndarray, size: int) -> dict[int, np.ndarray]:
    """The images the pairs use, each resized once as `digits` resizes: index -> (1, size, size)."""
    if size == 8:
        return {int(i): images[i] for i in used}
    return {int(i): _resize(images[i, 0], size)[None] for i in used}


def _split_indices() -> dict[str, np.ndarray]:
    """Each split's images as indices into scikit-learn's 1,797: the permutation `_load_digits` uses."""
    order = np.random.default_rng(0).permutation(sum(DIGITS_SPLIT.values()))
    out, start = {}, 0
    for split, count in DIGITS_SPLIT.items():
        out[split] = order[start:start + count]
        start += count
    return out


def _even(args: Mapping[str, Any], name: str) -> int:
    value = _int_arg("digit_pairs", args, name, minimum=2)
    if value % 2:
        raise DataError(f"data `digit_pairs` takes an even `{name}` (half the pairs are same-class), not {value}")
    return value
