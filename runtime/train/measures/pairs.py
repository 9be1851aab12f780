"""`show verification(net)`: how well a Siamese network tells same-class pairs from different ones.

The model scores each pair of the split (its first output, one number per pair: a distance, a
similarity or a probability); a pair counts as "same" when its score is above a threshold
(`same_if="above"`) or below it (`"below"`, distances; the compiler resolves `"auto"` from the op
that makes the score). The threshold is the one with the best accuracy on the validation pairs:
during the epochs the figures are those of the val split itself, and at the end, with the best
weights, the threshold is chosen on val again and the accuracy is that of the unseen test pairs.

Figures: `accuracy` (fraction of pairs decided right), `threshold` (the score that separates
them), `auc` (the area under the ROC curve on this split: the chance that a random same pair
scores "more same" than a random different one, whatever the threshold).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..evals import Context, measure


@measure("verification")
def verification(ctx: Context) -> dict[str, float]:
    o = ctx.options
    target, same_if = o["target"], o["same_if"]
    scores = pair_scores(ctx.module, ctx.split, ctx.show.feeds, ctx.batch, ctx.device)
    calibration = ctx.splits.get("val", ctx.split) if ctx.final else ctx.split
    val_scores = scores if calibration is ctx.split else \
        pair_scores(ctx.module, calibration, ctx.show.feeds, ctx.batch, ctx.device)
    threshold, _ = best_threshold(val_scores, calibration[target], same_if)
    return {"accuracy": accuracy_at(scores, ctx.split[target], threshold, same_if), "threshold": threshold,
            "auc": roc_auc(scores, ctx.split[target], same_if)}


def pair_scores(module: nn.Module, split: Mapping[str, np.ndarray], feeds: tuple[str, ...], batch: int,
                device: torch.device) -> np.ndarray:
    """The model's first output on every pair of the split, flattened to one float per pair: (N,)."""
    n = len(split[feeds[0]])
    out = []
    for start in range(0, n, batch):
        args = [torch.from_numpy(split[f][start:start + batch]).to(device) for f in feeds]
        result = module(*args)
        first = result[0] if isinstance(result, (tuple, list)) else result
        out.append(first.reshape(len(args[0])).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _oriented(scores: np.ndarray, same_if: str) -> np.ndarray:
    """Scores turned so that larger always means "more same"."""
    return np.asarray(scores, np.float64) * (1.0 if same_if == "above" else -1.0)


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float, same_if: str) -> float:
    """Fraction of pairs where (score above / below `threshold`) is (same == 1)."""
    decided = scores > threshold if same_if == "above" else scores < threshold
    return float(np.mean(decided == (np.asarray(same) > 0.5))) if len(scores) else 0.0


def best_threshold(scores: np.ndarray, same: np.ndarray, same_if: str) -> tuple[float, float]:
    """(threshold, accuracy) with the best accuracy on these pairs: the threshold lies midway between
    two neighbouring distinct scores (or just outside them all), the lowest such best one."""
    s = _oriented(scores, same_if)
    y = np.asarray(same) > 0.5
    if not len(s):
        return 0.0, 0.0
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    cuts = np.flatnonzero(np.diff(s) > 0) + 1  # split before index i: s[:i] "different", s[i:] "same"
    cuts = np.concatenate([[0], cuts, [len(s)]])
    different_below = np.concatenate([[0], np.cumsum(~y)])[cuts]
    same_above = y.sum() - np.concatenate([[0], np.cumsum(y)])[cuts]
    correct = different_below + same_above
    best = int(np.argmax(correct))
    i = cuts[best]
    low = s[i - 1] if i > 0 else s[0] - 1.0
    high = s[i] if i < len(s) else s[-1] + 1.0
    oriented = (low + high) / 2
    threshold = oriented if same_if == "above" else -oriented
    return float(threshold), float(correct[best] / len(s))


def roc_auc(scores: np.ndarray, same: np.ndarray, same_if: str) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); 0.5 without both kinds."""
    s = _oriented(scores, same_if)
    y = np.asarray(same) > 0.5
    positives, negatives = int(y.sum()), int((~y).sum())
    if not positives or not negatives:
        return 0.5
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2  # 1-based mean rank of each group of tied scores
    ranks[order] = np.repeat(average, counts)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))
