"""Segmentation metrics: `iou`, the mean intersection over union of per-pixel class predictions.

Like `accuracy` (compiler/ops/loss.py) it compares logits with i64 class indices, but per class:
for each class c, |pred == c and target == c| / |pred == c or target == c| over the whole batch,
averaged over the classes that occur in the prediction or the target (a class absent from both
says nothing and is left out). As a metric of a training definition it is one figure per batch,
averaged over the batches of an epoch like every output. PyTorch form: the `mean_iou` helper
(runtime/layers/); no ONNX form, like the losses (the ONNX export is the inference graph).
"""
from __future__ import annotations

from ..emit.onnx.context import NoOnnxForm, OnnxContext
from ..emit.torch.forms import OpSource, _call, _multi, _tidy
from ..ir.types import FLOAT_DTYPES, TensorType
from .table import Attrs, OpDef, Param, ShapeError, Types, int_, norm_dim, register, shapes_differ


def _iou_infer(a: Attrs, ins: Types) -> Types:
    logits, target = ins
    if logits.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"expects floating-point logits, got {logits}", 0)
    if logits.rank < 2:
        raise ShapeError(f"expects logits with a batch dim and a class dim, got {logits}", 0)
    axis = norm_dim(a["axis"], logits.rank)
    if axis == 0:
        raise ShapeError(f"the class axis {a['axis']} of logits {logits} is the batch dim 0", 0)
    want = logits.shape[:axis] + logits.shape[axis + 1:]
    if target.dtype != "i64":
        raise ShapeError(f"class-index target {target} must be i64", 1)
    if shapes_differ(want, target.shape):
        raise ShapeError(f"class-index target {target} must have the shape of logits {logits} without their "
                         f"class axis {a['axis']}", 1)
    return [TensorType("f32", ())]


def _iou_torch(src: OpSource, xs: list[str]) -> str:
    return _call("mean_iou", [*xs, _tidy(src.attrs["axis"])])


def _training_only(ctx: OnnxContext) -> list[str]:
    raise NoOnnxForm("it is a training metric, and the ONNX export is the inference graph")


register(
    OpDef("iou", (Param("axis", int_(), 1, "int"),), _iou_infer,
          "mean intersection over union of the arg-max class along `axis` and the i64 target, over the "
          "classes present in either (segmentation; one figure per batch)",
          "(B, C, ..), (B, ..) i64 -> () f32", "loss", inputs=(2, 2), input_flops=3,
          torch=_multi(_iou_torch, ("mean_iou",)), onnx=_training_only),
)
