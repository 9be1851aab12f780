"""`show neighbours(net.in_embed, words=["file", "list"], k=5)`: cosine nearest neighbours in a word table.

The part it names is an embedding table with one row per word of the data's vocabulary (the
compiler checks that, E0719; `data skipgram`, runtime/train/data_words.py, gives the words in its
meta). For each listed word (lowercased, as the data's words are), the `k` other words whose rows
have the largest cosine similarity with its row, the word itself left out; a listed word outside
the vocabulary gets a row that says so and counts in no figure.

A text table beside the run (samples/<name>_epochNNN.txt, samples/<name>_test.txt at the end) lists
them with their cosines. Figures: `mean_cosine`, the mean cosine of the listed neighbours;
`random_cosine`, the mean cosine of 1,000 random pairs of distinct words (drawn from the show's
generator), the level that neighbours of a trained table rise above; `words_found`, how many of the
listed words are in the vocabulary. The figures depend on the weights only, not on the split.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..evals import Context, measure
from ..modules import TrainError

RANDOM_PAIRS = 1000  # pairs of distinct words behind `random_cosine`

Row = tuple[str, list[tuple[str, float]] | None]  # a listed word and its neighbours (None: unknown word)


@measure("neighbours")
def neighbours(ctx: Context) -> dict[str, float]:
    words = list(ctx.meta.get("words", ()))
    unit = F.normalize(_table(ctx, len(words)), dim=1)  # (V, D), rows of norm 1 (zero rows stay zero)
    rows = nearest(unit, words, ctx.options["words"], ctx.options["k"])
    found = [r for _, r in rows if r is not None]
    if not found:
        raise TrainError(f"`show {ctx.show.name}`: none of the words {', '.join(ctx.options['words'])} is in the "
                         f"data's vocabulary of {len(words)} words")
    when = "test split, best weights" if ctx.final else f"epoch {ctx.epoch}"
    ctx.path(".txt").write_text(format_table(rows, f"{_part(ctx)}, {when}"))
    cosines = [c for r in found for _, c in r]
    return {"mean_cosine": sum(cosines) / len(cosines), "random_cosine": _random_cosine(unit, ctx.gen),
            "words_found": float(len(found))}


def nearest(unit: torch.Tensor, words: Sequence[str], listed: Sequence[str], k: int) -> list[Row]:
    """For each listed word, its k nearest other words by cosine (rows of `unit` have norm 1), best first."""
    index = {w: i for i, w in enumerate(words)}
    rows: list[Row] = []
    for word in listed:
        i = index.get(word.lower())
        if i is None:
            rows.append((word, None))
            continue
        cosines = unit @ unit[i]  # (V,)
        cosines[i] = -float("inf")  # never the word itself
        top = cosines.topk(k)
        rows.append((word, [(words[j], float(c)) for c, j in zip(top.values.tolist(), top.indices.tolist(),
                                                                    strict=True)]))
    return rows


def format_table(rows: Sequence[Row], title: str) -> str:
    """A fixed-width text table: the word, then `neighbour cosine` for each of its neighbours."""
    k = max((len(r) for _, r in rows if r is not None), default=0)
    cells = [["word", *(f"#{i + 1}" for i in range(k))]]
    cells += [[word, *(f"{w} {c:.3f}" for w, c in r)] if r is not None else [word, "(not in the vocabulary)"]
              for word, r in rows]
    widths = [max(len(line[i]) for line in cells if i < len(line)) for i in range(k + 1)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in cells]
    return f"nearest neighbours by cosine: {title}\n" + "\n".join(lines) + "\n"


def _table(ctx: Context, vocab: int) -> torch.Tensor:
    weight = getattr(ctx.module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise TrainError(f"`show {ctx.show.name}`: `{_part(ctx)}` holds no (words, dim) table")
    if weight.shape[0] != vocab:
        raise TrainError(f"`show {ctx.show.name}`: `{_part(ctx)}` has {weight.shape[0]} rows, but the data has "
                         f"a vocabulary of {vocab} words")
    return weight.detach().float().cpu()


def _random_cosine(unit: torch.Tensor, gen: torch.Generator) -> float:
    first = torch.randint(len(unit), (RANDOM_PAIRS,), generator=gen)
    second = (first + torch.randint(1, len(unit), (RANDOM_PAIRS,), generator=gen)) % len(unit)  # never `first`
    return float((unit[first] * unit[second]).sum(dim=1).mean())


def _part(ctx: Context) -> str:
    return ".".join(p for p in (ctx.show.model, ctx.show.child) if p)
