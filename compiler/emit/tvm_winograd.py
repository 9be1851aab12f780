"""Winograd F(4x4, 3x3) for the TVM backend's 3x3, stride-1 convolutions on CPU.

Assumes: Relax `nn.conv2d` calls with static shapes. Guarantees: a `LegalizeOps` map entry that
turns each eligible conv into two TIR calls: the weight transform (it depends on the weights
alone, so `LiftTransformParams` moves it into `main_transform_params`, run once when the
artifact loads) and the Winograd convolution proper, whose input transform, batched GEMM and
output transform MetaSchedule tunes (the first and last with TVM's own CPU Winograd rules, picked
by the blocks' `schedule_rule`). Everything else legalizes as TVM would.

Why: a 3x3 conv does 9 multiply-adds per input-output channel pair and output pixel; F(4x4, 3x3)
computes a 4x4 output tile with 36, i.e. 2.25 per pixel, so the heavy layers of ResNet-style
networks do 4x fewer multiplications, and what remains is a batched GEMM, the case MetaSchedule
schedules best. The price is rounding: outputs differ from direct convolution by ~1e-6 relative.
"""
from __future__ import annotations

TILE = 4  # output tile m; alpha = m + 3 - 1 = 6
MIN_CHANNELS = 16  # below this (e.g. RGB stems) the transforms cost more than they save


def eligible(call) -> bool:
    """A static NCHW/OIHW 3x3 conv with stride 1, dilation 1, one group and enough channels."""
    from tvm import tirx as tir

    attrs = call.attrs
    if (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) != ("NCHW", "OIHW", "NCHW"):
        return False
    if attrs.groups != 1 or [int(s) for s in attrs.strides] != [1, 1] or [int(d) for d in attrs.dilation] != [1, 1]:
        return False
    data, weight = (a.ty.shape for a in call.args)
    if data is None or weight is None:
        return False
    dims = [*data.values, *weight.values]
    if not all(isinstance(d, tir.IntImm) for d in dims):
        return False
    co, ci, kh, kw = (int(d) for d in weight.values)
    return (kh, kw) == (3, 3) and min(co, ci) >= MIN_CHANNELS


def weight_transform(kernel, tile: int = TILE):
    """[CO, CI, 3, 3] -> [alpha, alpha, CI, CO] (G g G^T per channel pair, laid out for the GEMM)."""
    from tvm import te
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    co, ci, k, _ = (int(d) for d in kernel.shape)
    alpha = tile + k - 1
    _, _, g = winograd_transform_matrices(tile, k, str(kernel.dtype))
    r_kh = te.reduce_axis((0, k), name="r_kh")
    r_kw = te.reduce_axis((0, k), name="r_kw")
    return te.compute(
        (alpha, alpha, ci, co),
        lambda eps, nu, c, o: te.sum(kernel[o, c, r_kh, r_kw] * g[eps, r_kh] * g[nu, r_kw], axis=[r_kh, r_kw]),
        name="transform_weight",
    )


def winograd_conv(data, kernel_pack, padding, out_dtype: str, tile: int = TILE):
    """TOPI's NCHW Winograd with a precomputed kernel; the block names and `schedule_rule` attrs
    are those TVM's CPU rules (`conv2d_nchw_winograd_data_pack` / `_inverse`) look for."""
    from tvm import te
    from tvm.topi.nn.pad import pad
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    n, ci, h, w = (int(d) for d in data.shape)
    alpha, _, _, co = (int(d) for d in kernel_pack.shape)
    k = alpha + 1 - tile
    pt, pl, pb, pr = (int(p) for p in padding)
    data_pad = pad(data, (0, 0, pt, pl), (0, 0, pb, pr), name="data_pad")
    a_mat, b_mat, _ = winograd_transform_matrices(tile, k, out_dtype)
    oh, ow = h + pt + pb - k + 1, w + pl + pr - k + 1
    nh, nw = (oh + tile - 1) // tile, (ow + tile - 1) // tile
    p = n * nh * nw
    input_tile = te.compute(
        (ci, p, alpha, alpha),
        lambda c, q, eps, nu: data_pad[q // (nh * nw), c, ((q // nw) % nh) * tile + eps, (q % nw) * tile + nu],
        name="input_tile", attrs={"schedule_rule": "None"},
    )
    r_a = te.reduce_axis((0, alpha), "r_a")
    r_b = te.reduce_axis((0, alpha), "r_b")
    data_pack = te.compute(
        (alpha, alpha, ci, p),
        lambda eps, nu, c, q: te.sum(input_tile[c, q, r_a, r_b] * b_mat[r_a, eps] * b_mat[r_b, nu], axis=[r_a, r_b]),
        name="data_pack", attrs={"schedule_rule": "conv2d_nchw_winograd_data_pack"},
    )
    rc = te.reduce_axis((0, ci), name="ci")
    bgemm = te.compute(
        (alpha, alpha, co, p),
        lambda eps, nu, o, q: te.sum(data_pack[eps, nu, rc, q] * kernel_pack[eps, nu, rc, o], axis=[rc]),
        name="bgemm",
    )
    r_a = te.reduce_axis((0, alpha), "r_a")
    r_b = te.reduce_axis((0, alpha), "r_b")
    inverse = te.compute(
        (co, p, tile, tile),
        lambda o, q, vh, vw: te.sum(bgemm[r_a, r_b, o, q] * a_mat[r_a, vh] * a_mat[r_b, vw], axis=[r_a, r_b]),
        name="inverse", attrs={"schedule_rule": "conv2d_nchw_winograd_inverse"},
    )
    return te.compute(
        (n, co, oh, ow),
        lambda b, o, y, x: inverse[o, b * nh * nw + (y // tile) * nw + (x // tile), y % tile, x % tile],
        name="conv2d_winograd",
    )


def legalize_conv2d(bb, call):
    """`LegalizeOps(customize_legalize_map={"relax.nn.conv2d": legalize_conv2d})`."""
    from tvm.relax.transform.legalize_ops.nn import _nn_conv2d

    if not eligible(call):
        return _nn_conv2d(bb, call)
    out_dtype = str(call.attrs.out_dtype) if str(call.attrs.out_dtype) not in ("", "void", "None") else None
    out_dtype = out_dtype or str(call.args[0].ty.dtype)
    packed = bb.emit(bb.call_te(weight_transform, call.args[1], primfunc_name_hint="winograd_weight"))
    return bb.call_te(winograd_conv, call.args[0], packed, [int(p) for p in call.attrs.padding], str(out_dtype),
                      primfunc_name_hint="conv2d_winograd")
