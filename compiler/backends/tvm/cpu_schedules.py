"""Default CPU schedules for the kernels TVM 0.27 would otherwise leave as plain loops.

On CPU targets TVM's dlight has rules for GEMV and reductions only, and `relax.build` applies
none of them: an untuned matmul is its TOPI loop nest, one multiply-add at a time (GPT-2 small
at T=128: 51 s per call where PyTorch takes 0.2 s). The rule here gives every matmul-shaped
PrimFunc that tuning did not schedule — an untuned build, and the tasks a `--tune-minutes`
limit left untuned — a register-tiled loop nest:

    parallel over (batch.., j tiles, i tiles)        # fused; j outer so a panel of B stays in cache
      for k tiles, k in tile (unrolled):
        for i in tile (unrolled):                    # II rows of A, one broadcast each
          for j in tile (vectorized):                # JI columns of B and C, contiguous
            acc[i, j] += A[.., i, k] * B[.., k, j]   # acc: an II x JI tile in registers
      C tile = acc, then the fused epilogue (bias, GELU, residual add) on that tile

A schedule changes the loop order, never what is computed, so every build it applies to is
still checked against PyTorch by the suite (tests/test_tvm_cpu_schedules.py, test_tvm.py).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tiles:
    """The register tile: II rows x JI columns of C accumulate in registers over KI-unrolled k steps."""

    ii: int
    ji: int
    ki: int = 4


def tiles_for(target) -> Tiles:
    """Tiles that fit the target's vector registers (II * JI / lanes accumulators, about half the file)."""
    from tvm.target import codegen

    if codegen.target_has_features("avx512f", target):
        return Tiles(ii=8, ji=32)  # 16 of 32 zmm registers
    if codegen.target_has_features("avx2", target):
        return Tiles(ii=6, ji=16)  # 12 of 16 ymm registers
    return Tiles(ii=8, ji=8)  # 128-bit vectors (NEON, SSE): 16 of 32 (NEON) registers


def matmul_rule():
    """The dlight rule (built on first use: importing TVM costs seconds)."""
    from tvm import s_tir, tirx
    from tvm.s_tir.dlight.analysis import normalize_prim_func
    from tvm.s_tir.dlight.base import try_inline_contiguous_spatial
    from tvm.s_tir.dlight.cpu.base import CPUScheduleRule

    class Matmul(CPUScheduleRule):
        """C[.., i, j] = sum_k A[.., i, k] * B[.., k, j], with at most one injective epilogue."""

        def apply(self, func, target, _tunable):
            if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
                return None
            sch = s_tir.Schedule(func)
            infos = try_inline_contiguous_spatial(sch, normalize_prim_func(sch))
            if infos is None or not 1 <= len(infos) <= 2 or (len(infos) == 2 and not infos[1].is_injective()):
                return None
            main = infos[0]
            kinds = "".join(main.dom_kind())
            if len(kinds) < 2 or kinds.count("R") != 1 or not kinds.endswith("R"):
                return None
            if not _is_multiply_accumulate(sch.get(main.block_rv)):
                return None
            loops = sch.get_loops(main.block_rv)
            if len(loops) != len(kinds) or not all(isinstance(sch.get(lp).extent, tirx.IntImm) for lp in loops):
                return None
            t = tiles_for(target)
            *batch, j, k = loops  # unit dims are gone: a batch-1 dense layer is [j, k]
            columns = int(sch.get(j).extent)
            jo, ji = sch.split(j, [None, min(t.ji, columns)])
            ko, ki = sch.split(k, [None, t.ki])
            rows = []
            if batch:
                i = batch.pop()
                io, ii = sch.split(i, [None, min(t.ii, int(sch.get(i).extent))])
                rows = [io]
                sch.reorder(*batch, jo, io, ko, ki, ii, ji)
                sch.unroll(ii)
            else:
                sch.reorder(jo, ko, ki, ji)
            acc = sch.cache_write(main.block_rv, 0, "local")
            sch.reverse_compute_at(acc, rows[0] if rows else jo)
            outer = sch.fuse(*batch, jo, *rows)
            sch.parallel(outer)
            sch.unroll(ki)
            sch.vectorize(ji)
            init = sch.decompose_reduction(main.block_rv, ko)
            sch.vectorize(sch.get_loops(init)[-1])
            sch.vectorize(sch.get_loops(acc)[-1])
            if len(infos) == 2:
                sch.reverse_compute_at(infos[1].block_rv, outer)
                sch.vectorize(sch.get_loops(infos[1].block_rv)[-1])
            return sch

    return Matmul()


def _is_multiply_accumulate(block) -> bool:
    """Whether the block's body is `C[..] = C[..] + A[..] * B[..]` (not a max, a mean or a norm)."""
    from tvm import tirx
    from tvm.ir.expr import TensorLoad  # TVM 0.27's buffer load (tirx.BufferLoad is a function making one)

    store = block.body
    if not isinstance(store, tirx.BufferStore) or not isinstance(store.value, tirx.Add):
        return False
    acc, product = store.value.a, store.value.b
    return (isinstance(acc, TensorLoad) and acc.source.same_as(store.buffer) and isinstance(product, tirx.Mul)
            and all(isinstance(x, (TensorLoad, tirx.Cast)) for x in (product.a, product.b)))


def _rules():
    """The matmul rule, then dlight's CPU rule for softmax, layer norm and other reductions (it
    parallelizes their rows: softmax 10 -> 5 ms, layer norm 7.5 -> 2.8 ms in GPT-2 at T=128)."""
    import tvm.s_tir.dlight as dl

    return [matmul_rule(), dl.cpu.Reduction()]


def apply_default_schedules(mod, target):
    """`mod` with the CPU default schedules on every PrimFunc not scheduled yet (tuned ones keep theirs)."""
    import tvm.s_tir.dlight as dl

    return dl.ApplyDefaultSchedule(*_rules())(mod)


def default_schedule(func, target):
    """The schedule `apply_default_schedules` gives the PrimFunc `func` (with its trace), or None."""
    for rule in _rules():
        sch = rule.apply(func, target, False)
        if isinstance(sch, list):
            sch = sch[0] if sch else None
        if sch is not None:
            return sch
    return None


def pad_matmul_columns(mod, target):
    """`matmul(x, w)` whose N columns leave a partial column tile (N > JI, N % JI != 0; GPT-2's
    50,257 logits, BERT's 30,522) as `matmul(x, pad(w))[..., :N]`, w padded with zero columns to
    a multiple of JI. With a partial tile the rule's predicate sits in the vectorized loop, and
    LLVM then ran every tile scalar: GPT-2's LM head took 2.4 s of its 2.9 s. A padded weight is
    weight-only work, which `LiftTransformParams` moves to load time; the slice is one copy of the
    output. Runs before legalization, on the Relax graph."""
    from tvm import relax, tirx
    from tvm.relax.dpl import is_op, rewrite_call, wildcard

    ji = tiles_for(target).ji
    lhs, rhs = wildcard(), wildcard()
    pattern = is_op("relax.matmul")(lhs, rhs)

    def rewrite(expr, matches):
        w = matches[rhs]
        shape, out = getattr(w.ty.shape, "values", None), expr.ty
        if shape is None or len(shape) < 2 or not all(isinstance(d, tirx.IntImm) for d in shape):
            return expr
        n = int(shape[-1])
        if n <= ji or n % ji == 0 or out.ndim < 1:
            return expr
        widths = [0] * (2 * len(shape))
        widths[-1] = ji - n % ji
        padded = relax.op.matmul(matches[lhs], relax.op.nn.pad(w, widths), out_dtype=expr.attrs.out_dtype)
        return relax.op.strided_slice(padded, axes=[out.ndim - 1], begin=[0], end=[n])

    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod[gv] = rewrite_call(pattern, rewrite, func)
    return mod
