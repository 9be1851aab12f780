"""`show masked_lm(bert, heads="heads")`: BERT pre-training measured on a held-out split of
`data bert(task="pretrain")` (runtime/train/data_bert.py).

    run       the encoder `bert` on the split's (input_ids, token_type_ids) and the pre-training
              heads (the model named by `heads`) on its (last_hidden_state, pooler_output): MLM
              logits (B, T, vocab) and NSP logits (B, 2)
    figures   mlm_accuracy      share of the split's chosen (masked) positions whose arg-max is the
                                original token: counted per token over the whole split (the train
                                definition's `accuracy(ignore=-100)` is a mean of batch means)
              mlm_top5          the same, the original among the 5 highest logits
              mask_accuracy, random_accuracy, kept_accuracy   mlm_accuracy on the chosen positions
                                that read [MASK], a random token, or the original token
              unigram_accuracy  the baseline: the share of chosen positions whose original token is
                                the train split's most frequent one (always answering it)
              nsp_accuracy      next-sentence prediction, per pair
              masked_tokens     how many positions were scored
"""
from __future__ import annotations

import numpy as np
import torch

from ..data_bert import IGNORE, MASK
from ..evals import Context, measure


@measure("masked_lm")
def masked_lm(ctx: Context) -> dict[str, float]:
    bert, heads = ctx.module, ctx.models[ctx.options["heads"]]
    split = ctx.split
    labels_all = split["mlm_labels"]
    hits = {"all": [0, 0], "top5": [0, 0], "mask": [0, 0], "random": [0, 0], "kept": [0, 0], "nsp": [0, 0]}
    for start in range(0, len(labels_all), ctx.batch):
        rows = slice(start, start + ctx.batch)
        ids = torch.from_numpy(split[ctx.show.feeds[0]][rows]).to(ctx.device)
        types = torch.from_numpy(split[ctx.show.feeds[1]][rows]).to(ctx.device)
        labels = torch.from_numpy(labels_all[rows]).to(ctx.device)
        nsp = torch.from_numpy(split["nsp_label"][rows]).to(ctx.device)
        hidden, pooled = bert(ids, types)[:2]
        mlm_logits, nsp_logits = heads(hidden, pooled)[:2]
        chosen = labels != IGNORE
        target = labels[chosen]
        logits = mlm_logits[chosen]  # (n, vocab)
        right = logits.argmax(-1) == target
        shown = ids[chosen]
        kinds = {"all": torch.ones_like(right), "mask": shown == MASK,
                 "kept": shown == target, "random": (shown != MASK) & (shown != target)}
        for kind, where in kinds.items():
            hits[kind][0] += int((right & where).sum())
            hits[kind][1] += int(where.sum())
        top5 = (logits.topk(min(5, logits.shape[-1]), -1).indices == target[:, None]).any(-1)
        hits["top5"][0] += int(top5.sum())
        hits["top5"][1] += int(top5.numel())
        hits["nsp"][0] += int((nsp_logits.argmax(-1) == nsp).sum())
        hits["nsp"][1] += int(nsp.numel())
    chosen_labels = labels_all[labels_all != IGNORE]
    unigram = ctx.meta.get("unigram_id")
    figures = {"mlm_accuracy": _share(hits["all"]), "mlm_top5": _share(hits["top5"]),
               "mask_accuracy": _share(hits["mask"]), "random_accuracy": _share(hits["random"]),
               "kept_accuracy": _share(hits["kept"]), "nsp_accuracy": _share(hits["nsp"]),
               "masked_tokens": float(hits["all"][1])}
    if unigram is not None and chosen_labels.size:
        figures["unigram_accuracy"] = float(np.mean(chosen_labels == unigram))
    return figures


def _share(pair: list[int]) -> float:
    return pair[0] / pair[1] if pair[1] else 0.0
