"""`show translate(net, beam=4, n=200)`: decode the split's sources and score them with BLEU.

The model maps (source ids (B, S), decoder input (B, t)) to logits (B, t, vocab): a seq2seq
network trained with teacher forcing on `data synthetic(...)` (runtime/train/data_seq.py). Its
first `n` sources are decoded twice, each output starting from BOS and stopping at EOS or after
T tokens (T: the width of the decoder input, which holds the longest target plus BOS):

- greedy: at each step the most probable next token;
- beam search: the `beam` most probable prefixes are kept at each step (by the sum of their
  log-probs); a finished one (it ended with EOS) stays as it is; the output is the finished or
  full-length beam with the best length-normalized log-prob (the sum divided by its length,
  EOS included).

Decoding re-runs the network on the whole growing prefix at each step: correct for any network
of this form (a causal decoder or an LSTM), and cheap enough for these lengths.

Figures: corpus BLEU of the decoded strings against the references (sacrebleu, character
tokens: the targets are strings of characters, not of words), the fraction decoded exactly, and
the mean length-normalized log-prob the model gives its own output, for greedy and beam search.
A text file beside them lists a few examples: source, reference, greedy, beam.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import sacrebleu
import torch
from torch import nn

from ..data_seq import decode
from ..evals import Context, measure
from ..modules import TrainError

EXAMPLES = 12  # lines of the examples file


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _next_logprobs(module: nn.Module, src: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """log p(next token | src, prefix): (N, vocab) from the logits at the prefix's last position."""
    return torch.log_softmax(_first(module(src, prefix))[:, -1].float(), dim=-1)


@torch.no_grad()
def greedy(module: nn.Module, src: torch.Tensor, bos: int, eos: int, pad: int,
           max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens (N, L) after BOS, PAD after EOS; summed log-probs (N,); lengths (N,), EOS counted)."""
    n = src.shape[0]
    seq = torch.full((n, 1), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(n, dtype=torch.bool, device=src.device)
    score = torch.zeros(n, device=src.device)
    length = torch.zeros(n, dtype=torch.long, device=src.device)
    for _ in range(max_len):
        logp = _next_logprobs(module, src, seq)
        token = torch.where(done, torch.full_like(done, pad, dtype=torch.long), logp.argmax(-1))
        score = score + torch.where(done, 0.0, logp.gather(1, token[:, None]).squeeze(1))
        length = length + (~done).long()
        seq = torch.cat([seq, token[:, None]], dim=1)
        done = done | (token == eos)
        if bool(done.all()):
            break
    return seq[:, 1:], score, length


@torch.no_grad()
def beam_search(module: nn.Module, src: torch.Tensor, bos: int, eos: int, pad: int, max_len: int,
                beam: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As `greedy`, the output of each source the beam of best length-normalized log-prob."""
    n, device = src.shape[0], src.device
    seqs = torch.full((n, beam, 1), bos, dtype=torch.long, device=device)
    scores = torch.full((n, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the beams start as one: BOS
    done = torch.zeros((n, beam), dtype=torch.bool, device=device)
    lengths = torch.zeros((n, beam), dtype=torch.long, device=device)
    src_k = src.repeat_interleave(beam, dim=0)
    for _ in range(max_len):
        logp = _next_logprobs(module, src_k, seqs.reshape(n * beam, -1)).view(n, beam, -1)
        vocab = logp.shape[-1]
        kept = torch.full_like(logp, float("-inf"))
        kept[..., pad] = 0.0  # a finished beam continues only with PAD, at no cost
        logp = torch.where(done[..., None], kept, logp)
        top, index = (scores[..., None] + logp).view(n, beam * vocab).topk(beam, dim=1)
        parent, token = index // vocab, index % vocab
        seqs = torch.cat([seqs.gather(1, parent[..., None].expand(-1, -1, seqs.shape[2])), token[..., None]], dim=2)
        was_done = done.gather(1, parent)
        lengths = lengths.gather(1, parent) + (~was_done).long()
        done = was_done | (token == eos)
        scores = top
        if bool(done.all()):
            break
    best = (scores / lengths.clamp(min=1)).argmax(dim=1)
    rows = torch.arange(n, device=device)
    return seqs[rows, best, 1:], scores[rows, best], lengths[rows, best]


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0..100) of character strings, each character a token (sacrebleu)."""
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="char").score)


@measure("translate")
def translate(ctx: Context) -> dict[str, float]:
    meta = ctx.meta
    if not all(key in meta for key in ("tokens", "bos", "eos", "pad")):
        raise TrainError(f"show `{ctx.show.name}`: `translate` decodes with a vocabulary in the data's meta "
                         f"(tokens, bos, eos, pad), as `data synthetic(...)` gives; this data has none")
    tokens, bos, eos, pad = meta["tokens"], meta["bos"], meta["eos"], meta["pad"]
    o = ctx.options
    src_field, tgt_field = ctx.show.feeds
    count = min(o["n"], len(ctx.split[src_field]))
    src, tgt = ctx.split[src_field][:count], ctx.split[tgt_field][:count]
    max_len = tgt.shape[1]
    module = ctx.module
    chunk = max(1, ctx.batch // o["beam"])
    found: dict[str, list[str]] = {"greedy": [], "beam": []}
    logprob = {"greedy": 0.0, "beam": 0.0}
    for start in range(0, count, chunk):
        x = torch.from_numpy(np.ascontiguousarray(src[start:start + chunk])).to(ctx.device)
        runs = {"greedy": greedy(module, x, bos, eos, pad, max_len),
                "beam": beam_search(module, x, bos, eos, pad, max_len, o["beam"])}
        for way, (seqs, score, length) in runs.items():
            found[way] += [decode(row, tokens, eos, (pad, bos)) for row in seqs.cpu().tolist()]
            logprob[way] += float((score / length.clamp(min=1)).sum())
    references = [decode(row, tokens, eos, (pad, bos)) for row in tgt.tolist()]
    sources = [decode(row, tokens, eos, (pad, bos)) for row in src.tolist()]
    lines = [f"# {ctx.show.name} on the {ctx.split_name} split (epoch {ctx.epoch}): greedy and beam {o['beam']}"]
    for i in range(min(EXAMPLES, count)):
        lines += ["", f"source:    {sources[i]}", f"reference: {references[i]}", f"greedy:    {found['greedy'][i]}",
                  f"beam {o['beam']}:    {found['beam'][i]}"]
    ctx.path(".txt").write_text("\n".join(lines) + "\n")
    figures: dict[str, float] = {}
    for way, hypotheses in found.items():
        figures[f"bleu_{way}"] = bleu(hypotheses, references)
        figures[f"exact_{way}"] = float(np.mean([h == r for h, r in zip(hypotheses, references, strict=True)]))
        figures[f"logprob_{way}"] = logprob[way] / count
    return figures
