"""Winograd convolution for the TVM backend's CPU targets: which convs take it, and their legalization.

Assumes: a Relax module from the ONNX frontend (NCHW data, OIHW weights) whose weights are
parameters of `main` (`num_input` set), before `LegalizeOps`. Guarantees: every conv that
`eligible` accepts is legalized as F(m x m, 3 x 3) Winograd (Lavin & Gray 2016): the weights'
transform is a separate call on the weight alone, which `LiftTransformParams` moves to
`main_transform_params` (run once when the artifact loads); the per-call kernel packs the input
tiles, runs alpha^2 batched GEMMs over the channels and transforms the tiles back. Its blocks carry
the `schedule_rule` annotations of TOPI's Winograd compute, so MetaSchedule schedules the data
pack and the inverse with TVM's own CPU Winograd rules and tiles the GEMM like any other.
Other convs keep Relax's default legalization.

Why (2 cores, znver3, one conv + ReLU tuned alone, best of the runner; docs/tvm-tuning-notes.md):
the 256-channel 14x14 conv of ResNet-18 ran 0.91 ms after 192 Winograd trials against 1.77 ms for
the direct conv after 449 trials, and 1.63 ms in PyTorch eager; at 128 channels 28x28, 1.37 ms
after 128 trials against 1.86 ms direct (616 trials). With 64 channels (56x56) the transforms
weigh as much as the GEMMs saved: 1.59 ms against 1.33 ms direct; hence MIN_CHANNELS. At 512
channels 7x7 (4 tiles) the transformed weights (alpha^2 / 9 = 4x the conv's) are read for little
compute: 2.25 ms after 128 trials (F(2x2, 3x3): 1.88 ms) against 1.94 ms direct; hence MIN_TILES.
"""
from __future__ import annotations

import importlib
from typing import Any

MIN_CHANNELS = 128  # both in and out channels; below it the direct conv tuned faster
TILE = 4  # output tile m: F(4x4, 3x3), alpha = 6, 2.25 multiplies per output instead of 9
MIN_TILES = 16  # output tiles in the batch (the GEMMs' N): fewer, and the 4x larger weights dominate


def eligible(attrs: Any, data_shape: list, weight_shape: list, dtype: str) -> bool:
    """A float32, NCHW/OIHW, ungrouped 3x3 conv with stride 1, no dilation, static shape, at
    least MIN_CHANNELS channels in and out, and at least MIN_TILES output tiles."""
    if not all(isinstance(d, int) for d in [*data_shape, *weight_shape]) or len(weight_shape) != 4:
        return False
    (batch, _, height, width), (out_ch, in_ch, kh, kw) = data_shape, weight_shape
    if not (dtype == "float32" and str(attrs.out_dtype) in ("None", "", "void", "float32")
            and (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) == ("NCHW", "OIHW", "NCHW")
            and int(attrs.groups) == 1 and (kh, kw) == (3, 3)
            and [int(s) for s in attrs.strides] == [1, 1] and [int(d) for d in attrs.dilation] == [1, 1]):
        return False
    top, left, bottom, right = (int(p) for p in attrs.padding)
    tiles = batch * -(-(height + top + bottom - 2) // TILE) * -(-(width + left + right - 2) // TILE)
    return min(in_ch, out_ch) >= MIN_CHANNELS and tiles >= MIN_TILES


def weight_transform(weight, tile: int = TILE):
    """G g G^T for every (out, in) channel pair, laid out [alpha, alpha, in, out] as the GEMM reads it."""
    from tvm import te
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    out_ch, in_ch, k, _ = (int(s) for s in weight.shape)
    alpha = tile + k - 1
    _, _, g = winograd_transform_matrices(tile, k, str(weight.dtype))
    rh, rw = te.reduce_axis((0, k), "rh"), te.reduce_axis((0, k), "rw")
    return te.compute((alpha, alpha, in_ch, out_ch),
                      lambda eps, nu, ci, co: te.sum(weight[co, ci, rh, rw] * g[eps, rh] * g[nu, rw], axis=[rh, rw]),
                      name="winograd_weight")


def conv(data, packed_weight, padding, tile: int = TILE):
    """TOPI's NCHW Winograd compute on weights already transformed by `weight_transform`."""
    # the tile size is only a parameter of the private implementation; the public entry fixes 4
    impl = importlib.import_module("tvm.topi.nn.conv2d")._conv2d_winograd_nchw_impl
    return impl(data, packed_weight, (1, 1), padding, (1, 1), "float32", tile, pre_computed=True)


def legalize_conv2d(bb, call):
    """`LegalizeOps`' rule for `relax.nn.conv2d` on CPU targets: Winograd where `eligible`, else the default."""
    from tvm.relax.transform.legalize_ops.nn import _nn_conv2d

    data, weight = call.args
    data_shape = [_static(d) for d in data.ty.shape]
    weight_shape = [_static(d) for d in weight.ty.shape]
    if not eligible(call.attrs, data_shape, weight_shape, str(data.ty.dtype)):
        return _nn_conv2d(bb, call)
    packed = bb.emit_te(weight_transform, weight, primfunc_name_hint="winograd_weight")
    padding = [int(p) for p in call.attrs.padding]
    return bb.call_te(conv, data, packed, padding, primfunc_name_hint="winograd")


def _static(dim) -> int | None:
    try:
        return int(dim)
    except (TypeError, ValueError):
        return None
