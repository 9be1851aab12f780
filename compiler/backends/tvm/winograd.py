"""Winograd convolution for the TVM backend's CPU targets: which convs take it, and their legalization.

Assumes: a Relax module from the ONNX frontend (NCHW data, OIHW weights) whose weights are
parameters of `main` (`num_input` set), before `LegalizeOps`. Guarantees: every conv for which
`tile_for` gives a tile m is legalized as F(m x m, 3 x 3) Winograd (Lavin & Gray 2016): the weights'
transform is a separate call on the weight alone, which `LiftTransformParams` moves to
`main_transform_params` (run once when the artifact loads); the per-call kernel packs the input
tiles, runs alpha^2 batched GEMMs over the channels and transforms the tiles back. Its blocks carry
the `schedule_rule` annotations of TOPI's Winograd compute, so MetaSchedule schedules the data
pack and the inverse with TVM's own CPU Winograd rules and tiles the GEMM like any other.
Other convs keep Relax's default legalization.

Opt-in only (`dlc compile --tune N --winograd`, `build.Tuning(winograd=True)`, `build.prepare(...,
winograd=True)`): the transforms multiply every input by the matrices' zeros and add terms that
cancel only in exact arithmetic, so one NaN or Inf input pixel makes every output of the tiles it
reaches NaN (two ResNet BasicBlocks 64 -> 128 at 16x16, one NaN pixel: PyTorch 10,368 NaN
outputs, Winograd all 32,768). The direct conv keeps IEEE semantics: NaN exactly where the
outputs depend on the input. A compiler must not change that silently, so the user asks for it.

Why (2 cores, znver3, one conv + ReLU tuned alone with `benchmarks/conv_layer.py`, 128 trials;
"from memory" cycles weight copies past the L3 cache, as a whole model does; eager PyTorch reads
its weights from memory too; docs/tvm-tuning-notes.md):

| layer | F(4x4, 3x3) | F(2x2, 3x3) | direct | eager |
| 128 ch 28x28 | 0.86 ms (2.2 MiB) | 1.33 ms (1 MiB) | 1.86 ms* | 1.17 ms |
| 256 ch 14x14 | 1.99 ms (9 MiB) | 0.92 ms (4 MiB) | 1.77 ms* | 1.33 ms |
| 64 ch 56x56 | 1.59 ms* | 1.26 ms | 1.33 ms* | 1.26 ms |
(* runner best, weights in cache.) F(4x4) does 2.25 multiplies per output and F(2x2) 4 instead of
9, but their weights are alpha^2 / 9 = 4x and 1.8x the conv's, read by every call: once they
outgrow the caches (the 256-channel F(4x4) runs 0.92 ms in the tuner's runner and 2 ms in a
model), the smaller tile wins; hence MAX_WEIGHT_BYTES. With 64 channels the transforms weigh as
much as the GEMMs saved; hence MIN_CHANNELS. At 512 channels 7x7 even F(2x2)'s weights are 16 MiB
for 16 tiles (1.88 ms in the runner's cache against 1.94 ms direct); hence MIN_TILES and the budget.
"""
from __future__ import annotations

import importlib
from typing import Any

MIN_CHANNELS = 128  # both in and out channels; below it the direct conv tuned faster
TILES = (4, 2)  # output tiles m tried in turn: F(4x4, 3x3) (alpha = 6, 2.25 multiplies per output
# instead of 9), then F(2x2, 3x3) (alpha = 4, 4 multiplies) whose weights are 16/36 the size
MAX_WEIGHT_BYTES = 4 << 20  # transformed weights (alpha^2 x in x out floats) read by every call
MIN_TILES = 16  # output tiles in the batch (the GEMMs' N): fewer, and the larger weights dominate


def tile_for(attrs: Any, data_shape: list, weight_shape: list, dtype: str) -> int | None:
    """The Winograd output tile for this conv, or None for the direct conv: it must be a float32,
    NCHW/OIHW, ungrouped 3x3 conv with stride 1, no dilation, static shape and at least
    MIN_CHANNELS channels in and out; the first of TILES that divides the output's height and
    width, whose transformed weights fit in MAX_WEIGHT_BYTES and which gives at least MIN_TILES
    output tiles is taken."""
    if not all(isinstance(d, int) for d in [*data_shape, *weight_shape]) or len(weight_shape) != 4:
        return None
    (batch, _, height, width), (out_ch, in_ch, kh, kw) = data_shape, weight_shape
    if not (dtype == "float32" and str(attrs.out_dtype) in ("None", "", "void", "float32")
            and (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) == ("NCHW", "OIHW", "NCHW")
            and int(attrs.groups) == 1 and (kh, kw) == (3, 3)
            and [int(s) for s in attrs.strides] == [1, 1] and [int(d) for d in attrs.dilation] == [1, 1]
            and min(in_ch, out_ch) >= MIN_CHANNELS):
        return None
    top, left, bottom, right = (int(p) for p in attrs.padding)
    out_h, out_w = height + top + bottom - 2, width + left + right - 2
    for tile in TILES:
        # whole tiles only. TOPI's compute read past its padded input at partial edge tiles
        # (garbage up to 1e31 once tuned); `partial_tile_conv` pads it and is correct untuned,
        # but MetaSchedule's second search round on it failed ("The block no longer exists")
        if out_h % tile or out_w % tile:
            continue
        fits = (tile + 2) ** 2 * in_ch * out_ch * 4 <= MAX_WEIGHT_BYTES
        if fits and batch * (out_h // tile) * (out_w // tile) >= MIN_TILES:
            return tile
    return None


def weight_transform(weight, tile: int):
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


def conv(data, packed_weight, padding, tile: int):
    """TOPI's NCHW Winograd compute on weights already transformed by `weight_transform`; where
    the output is not a whole number of tiles, `partial_tile_conv` instead."""
    top, left, bottom, right = padding
    out_h, out_w = int(data.shape[2]) + top + bottom - 2, int(data.shape[3]) + left + right - 2
    if out_h % tile or out_w % tile:
        return partial_tile_conv(data, packed_weight, padding, tile)
    # the tile size is only a parameter of the private implementation; the public entry fixes 4
    impl = importlib.import_module("tvm.topi.nn.conv2d")._conv2d_winograd_nchw_impl
    return impl(data, packed_weight, (1, 1), padding, (1, 1), "float32", tile, pre_computed=True)


def partial_tile_conv(data, packed_weight, padding, tile: int):
    """TOPI's NCHW Winograd compute (`_conv2d_winograd_nchw_impl`, `pre_computed=True`), the
    same blocks and schedule rules, with the input padded to whole tiles.

    TOPI's NCHW compute pads the input by the conv's padding only, so where the output is not a
    whole number of tiles the last row and column of tiles read up to `tile - 1` rows and columns
    past its padded buffer (TOPI's NHWC compute pads the difference, `pad_extra`). Those reads
    return the next channel's pixels, or past the last channel whatever memory follows; the
    transforms cancel them only in exact arithmetic, so the last tile row came out wrong (up
    to 1e31, varying from call to call; docs/tvm-tuning-notes.md, "Whole tiles only"). Not a
    crop of a whole-tile compute: MetaSchedule's search failed on that extra block ("The block
    no longer exists in the IRModule")."""
    from tvm import te, topi
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    batch, in_ch, height, width = (int(d) for d in data.shape)
    alpha, _, _, out_ch = (int(d) for d in packed_weight.shape)
    top, left, bottom, right = padding
    out_h, out_w = height + top + bottom - 2, width + left + right - 2
    tiles_h, tiles_w = -(-out_h // tile), -(-out_w // tile)
    extra_h, extra_w = tiles_h * tile - out_h, tiles_w * tile - out_w
    data_pad = topi.nn.pad(data, (0, 0, top, left), (0, 0, bottom + extra_h, right + extra_w), name="data_pad")
    a, b, _ = winograd_transform_matrices(tile, 3, "float32")
    tiles = batch * tiles_h * tiles_w
    input_tile = te.compute(
        (in_ch, tiles, alpha, alpha),
        lambda ci, p, eps, nu: data_pad[p // (tiles_h * tiles_w), ci, ((p // tiles_w) % tiles_h) * tile + eps,
                                        (p % tiles_w) * tile + nu],
        name="input_tile", attrs={"schedule_rule": "None"})
    r_a, r_b = te.reduce_axis((0, alpha), "r_a"), te.reduce_axis((0, alpha), "r_b")
    data_pack = te.compute(
        (alpha, alpha, in_ch, tiles),
        lambda eps, nu, ci, p: te.sum(input_tile[ci, p, r_a, r_b] * b[r_a, eps] * b[r_b, nu], axis=[r_a, r_b]),
        name="data_pack", attrs={"schedule_rule": "conv2d_nchw_winograd_data_pack"})
    ci = te.reduce_axis((0, in_ch), name="ci")
    bgemm = te.compute(
        (alpha, alpha, out_ch, tiles),
        lambda eps, nu, co, p: te.sum(data_pack[eps, nu, ci, p] * packed_weight[eps, nu, ci, co], axis=[ci]),
        name="bgemm", attrs={"layout_free_placeholders": [packed_weight]})
    r_a, r_b = te.reduce_axis((0, alpha), "r_a"), te.reduce_axis((0, alpha), "r_b")
    inverse = te.compute(
        (out_ch, tiles, tile, tile),
        lambda co, p, vh, vw: te.sum(bgemm[r_a, r_b, co, p] * a[r_a, vh] * a[r_b, vw], axis=[r_a, r_b]),
        name="inverse", attrs={"schedule_rule": "conv2d_nchw_winograd_inverse"})
    return te.compute(
        (batch, out_ch, out_h, out_w),
        lambda n, co, h, w: inverse[co, n * tiles_h * tiles_w + (h // tile) * tiles_w + (w // tile), h % tile, w % tile],
        name="conv2d_winograd")


def legalize_conv2d(bb, call):
    """`LegalizeOps`' rule for `relax.nn.conv2d` on CPU targets: Winograd where `tile_for` gives a tile, else the default."""
    from tvm.relax.transform.legalize_ops.nn import _nn_conv2d

    data, weight = call.args
    data_shape = [_static(d) for d in data.ty.shape]
    weight_shape = [_static(d) for d in weight.ty.shape]
    tile = tile_for(call.attrs, data_shape, weight_shape, str(data.ty.dtype))
    if tile is None:
        return _nn_conv2d(bb, call)
    packed = bb.emit_te(weight_transform, weight, tile, primfunc_name_hint="winograd_weight")
    padding = [int(p) for p in call.attrs.padding]
    return bb.call_te(conv, data, packed, padding, tile, primfunc_name_hint="winograd")


def _static(dim) -> int | None:
    try:
        return int(dim)
    except (TypeError, ValueError):
        return None
