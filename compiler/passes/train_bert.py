"""The train pass's check of `show masked_lm(bert, heads="heads")` (part of compiler/passes/train.py;
the measure is runtime/train/measures/bert.py): the encoder must read the ids and token types of
`data bert(task="pretrain")` and give (last_hidden_state, pooler_output) (else E0723), and `heads`
must be a model applied to those two outputs that gives MLM logits (B, T, vocab) over the data's
vocabulary and NSP logits (B, 2) (else E0724)."""
from __future__ import annotations

from typing import Any, Mapping

from .. import messages
from ..diagnostics import Diagnostics
from ..ir.dims import shape_str
from ..ir.graph import BlockCall, Graph
from ..ir.train import DataPlan
from ..ir.types import TensorType
from ..syntax import ast


def _type(t: TensorType | None) -> str:
    return "nothing" if t is None else f"{t.dtype}{shape_str(t.shape)}"


def check_masked_lm(diags: Diagnostics, s: ast.Setting, g: Graph, c: BlockCall, child: str,
                    feeds: tuple[str, ...], opts: Mapping[str, Any], data: DataPlan | None,
                    models: set[str]) -> tuple[tuple[int, ...], int] | None:
    """((seq,), vocab) of a fitting `masked_lm` show; None after E0723 / E0724."""
    span = s.args[0].span
    data_opts = {o.name: o.value for o in data.options} if data is not None else {}
    if data is not None and (data.kind != "bert" or data_opts.get("task") != "pretrain"):
        what = f'`data bert(task="{data_opts.get("task")}")`' if data.kind == "bert" else f"data `{data.kind}`"
        diags.add(messages.masked_lm_unfit_encoder(
            span, f'it scores the masked tokens of `data bert(task="pretrain")`, not of {what}'))
        return None
    ins = [g.type_of(v) for v in c.inputs]
    outs = [g.type_of(v) for v in c.outputs]
    if child or len(ins) != 2 or tuple(feeds) != ("input_ids", "token_type_ids"):
        diags.add(messages.masked_lm_unfit_encoder(
            span, f"it needs the encoder applied to the data fields (input_ids, token_type_ids), found "
                  f"{', '.join(feeds[i] or _type(t) for i, t in enumerate(ins)) or 'no inputs'}"))
        return None
    if len(outs) < 2 or outs[0].rank != 3 or outs[1].rank != 2:
        diags.add(messages.masked_lm_unfit_encoder(
            span, f"its outputs are {', '.join(map(_type, outs))}, not hidden states (B, T, d) and a pooled "
                  f"state (B, d)"))
        return None
    heads = opts["heads"]
    arg = next((a for a in s.args[1:] if a.name == "heads"), None)
    heads_span = arg.value.span if arg is not None else s.span
    if heads not in models:
        diags.add(messages.masked_lm_unfit_heads(
            heads_span, f"there is no model `{heads}` (models: {', '.join(sorted(models))})"))
        return None
    found = [call for call in g.calls if call.parent == "" and call.frame.path == heads]
    if not found:
        diags.add(messages.masked_lm_unfit_heads(
            heads_span, f"the objective does not run `{heads}` beside the encoder"))
        return None
    hc = found[0]
    h_outs = [g.type_of(v) for v in hc.outputs]
    shown = ", ".join(map(_type, h_outs))
    if tuple(hc.inputs[:2]) != tuple(c.outputs[:2]):
        diags.add(messages.masked_lm_unfit_heads(heads_span, f"`{heads}` does not read the encoder's two outputs"))
        return None
    vocab = dict(data_opts).get("vocab")
    ok = len(h_outs) >= 2 and h_outs[0].rank == 3 and h_outs[0].shape[2].is_const and h_outs[1].rank == 2 \
        and h_outs[1].shape[1].is_const and h_outs[1].shape[1].value == 2
    if ok and vocab is not None and h_outs[0].shape[2].value != vocab:
        diags.add(messages.masked_lm_unfit_heads(
            heads_span, f"`{heads}` gives {h_outs[0].shape[2].value} MLM classes, but the data's vocabulary has "
                        f"{vocab} tokens"))
        return None
    if not ok:
        diags.add(messages.masked_lm_unfit_heads(heads_span, f"`{heads}` gives {shown}"))
        return None
    seq = data_opts.get("seq")
    return ((seq,) if seq is not None else ()), h_outs[0].shape[2].value
