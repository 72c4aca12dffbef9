"""Triton kernels of the fused decode step (`fused.py`): a whole Gemma-4 layer in 7 launches
(8 with the q/k prep launch kept separate).

A batch-1 decode step is ~3.8 ms of kernels of which only ~2.2 ms is the unavoidable weight
streaming; the rest was ~450 small kernels (norms, residual adds, RoPE, softmax, copies) each
costing a few microseconds however little it does. These kernels fold that work into the
mat-vecs that need it:

- `matvec_kernel` epilogues apply GeGLU (gate and up rows are read by the same program), the
  per-layer-embedding gate, a scale, or the final softcap with a per-block argmax. A mat-vec
  whose output is a residual delta also finalizes: the last of its programs to finish (an
  atomic counter) adds the normed delta to the residual stream, applies the layer scalar and
  writes the RMS-normed input of the next mat-vec. (An earlier version had every program of
  the next mat-vec recompute that input itself: ~3 us more per mat-vec and 77 us more on the
  lm_head, measured on an H200.)
- `attention_kernel` is split-KV flash decoding over the positions the query can see; the last
  program of each KV head to finish (an atomic counter) merges the splits, so no second launch
  (with one split a KV head, that program writes the output directly).
  With PREP it also does the per-head q/k/v RMSNorms and RoPE: each program norms and rotates
  its own query heads in registers, and the program whose positions include the new one writes
  its KV head's new key and value into the cache before reading keys.
- `qk_prep_kernel` is the same prep as a launch of its own (one program per head, q into a
  buffer), for the unfused variant (`FusedDecodeStep(fuse_prep=False)`).
- With `screen_head`, the lm_head mat-vec reads int8 codes and its SCREEN epilogue leaves each
  row's upper bound and a floor (the largest lower bound); `head_verify_kernel` computes only
  the bf16 rows whose bound reaches the floor, so the argmax is the full lm_head's.
- `finish_kernel` reduces the argmax blocks, feeds the token back and advances the position.

Arithmetic mirrors transformers' bf16 rounding points (`_rnd` after every op that produces a
bf16 tensor there), with float32 statistics and accumulation, so the fused step stays as close
to transformers as the unfused one. With `TRITON_INTERPRET=1` the same kernels run on CPU
tensors (numpy), which is how CI checks them against transformers in float32.

`USE_PDL` kernels are launched with programmatic dependent launch: each program lets the next
kernel start as soon as every program of this one is running (`gdc_launch_dependents`), and
waits for the previous kernel (`gdc_wait`) only after issuing its first weight loads, which do
not depend on it. So a kernel's start-up overlaps the tail of the one before.

L2 hints (`STREAM`, `KEEP`: a `tl.load` eviction policy, "" for none): the streamed weights
are read `evict_first` and the norm weights of the finalizer `evict_last`, so the 9 GB that
pass through the 50 MB L2 every step do not push out what the next step reads again (norm
vectors, the KV cache, activations).
"""

# Triton compiles a subset of Python: keep the plain if/else forms its code generator handles
# for constexpr and runtime conditions alike.
# ruff: noqa: SIM108

from __future__ import annotations

import importlib.util
import os

HAVE_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

# What a launch raises when its tile needs more shared memory or registers than the GPU has
# (which the compiler finds out only for that GPU): the tuners skip such candidates.
OUT_OF_RESOURCES: tuple[type[Exception], ...] = ()

# Epilogues: what a mat-vec does with its output rows.
STORE = 0
SCALE = 1  # y * out_scale (the per-layer-embedding model projection)
PLE_GATE = 2  # gelu(y) * per-layer input of this layer
SOFTCAP_ARGMAX = 3  # final softcap, then each program's (max, first index)
GEGLU = 4  # rows i and i + N/2 are gate and up: gelu(gate) * up
# The lm_head on int8 codes as a screen (`head_verify_kernel` then finds the exact argmax):
# each row's softcapped upper bound, and the largest lower bound over all rows (an atomic).
SCREEN = 5

# Parts of the attention kernel its ABLATE bits leave out (timing experiments only).
ABLATE_KEYS = 1  # the key loop
ABLATE_QUERY = 2  # the query's loads, norms and RoPE, and the cache write
ABLATE_MERGE = 4  # the split partials, counter and merge

if HAVE_TRITON:
    import triton
    import triton.language as tl
    from triton.runtime.errors import OutOfResources

    OUT_OF_RESOURCES = (OutOfResources,)

    from swarmlab.engine.fast.kernels import widen_int

    # Kernels may only read globals that are constexpr.
    _STORE = tl.constexpr(STORE)
    _SCALE = tl.constexpr(SCALE)
    _PLE_GATE = tl.constexpr(PLE_GATE)
    _SOFTCAP_ARGMAX = tl.constexpr(SOFTCAP_ARGMAX)
    _GEGLU = tl.constexpr(GEGLU)
    _SCREEN = tl.constexpr(SCREEN)

    @triton.jit
    def _rnd(x, DT: tl.constexpr):
        """Round to the model dtype and back: where transformers stores a bf16 tensor."""
        return x.to(DT).to(tl.float32)

    @triton.jit
    def _tanh(x):
        return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0

    @triton.jit
    def _gelu(x):
        """gelu with the tanh approximation (`gelu_pytorch_tanh`)."""
        return 0.5 * x * (1.0 + _tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))

    @triton.jit
    def _softcap(y, cap, DT: tl.constexpr):
        """The final logit softcap at transformers' bf16 rounding points (cap 0: none)."""
        if cap > 0:
            y = _rnd(_rnd(_tanh(_rnd(y / cap, DT)), DT) * cap, DT)
        return y

    @triton.jit
    def _screen_bounds(y, reach, valid, cap, DT: tl.constexpr):
        """Bounds on the softcapped bf16 logit whose float32 value is within `reach` of the
        screen's `y`: rounding and the softcap are monotone, so bounds stay bounds after them.
        (upper, lower), lower -inf where not `valid`."""
        upper = _softcap(_rnd(y + reach, DT), cap, DT)
        lower = tl.where(valid, _softcap(_rnd(y - reach, DT), cap, DT), float("-inf"))
        return upper, lower

    @triton.jit
    def _pdl_wait(USE_PDL: tl.constexpr):
        if USE_PDL:
            tl.extra.cuda.gdc_wait()

    @triton.jit
    def _pdl_release(USE_PDL: tl.constexpr):
        if USE_PDL:
            tl.extra.cuda.gdc_launch_dependents()

    @triton.jit
    def _widen(w, QUANT: tl.constexpr):
        """A weight tile as float32 (int8 codes through `kernels.widen_int`)."""
        if QUANT:
            return widen_int(w)
        else:
            return w.to(tl.float32)

    @triton.jit
    def _finalize(
        y_ptr,
        tok,
        res_ptr,
        gpost_ptr,
        scalar_ptr,
        gpre_ptr,
        res_out_ptr,
        xin_ptr,
        HID,
        res_scale,
        eps,
        DT: tl.constexpr,
        F_FROM_TOKEN: tl.constexpr,
        F_HAS_DELTA: tl.constexpr,
        F_HAS_SCALAR: tl.constexpr,
        F_PRE_NORM: tl.constexpr,
        HB: tl.constexpr,
        KEEP: tl.constexpr,
        write=True,
        plane=0,
        SPLIT: tl.constexpr = 1,
    ):
        """res_out = (res + rmsnorm(y) * g_post) * scalar; xin = rmsnorm(res_out) * g_pre.
        Returns res_out (float32, HB lanes, zero past HID); stores it only where `write`.
        With SPLIT > 1, y is the sum of SPLIT float32 partials `plane` elements apart, rounded
        as the unsplit mat-mat rounds its output.

        KEEP is the L2 eviction policy for the norm weights ("evict_last" keeps them resident
        while the streamed weights pass by, "" leaves the default)."""
        offs = tl.arange(0, HB)
        ok = offs < HID
        base = res_ptr
        if F_FROM_TOKEN:
            base = res_ptr + tok * HID
        # Every load first: a reduction's barrier would keep a later one from being hoisted,
        # and each is a round trip on this serial tail.
        h = tl.load(base + offs, mask=ok, other=0.0, cache_modifier=".cg").to(tl.float32)
        d = h
        g = h
        g2 = h
        scalar = 1.0
        if F_HAS_DELTA:
            d = tl.load(y_ptr + offs, mask=ok, other=0.0, cache_modifier=".cg").to(tl.float32)
            if SPLIT > 1:
                for part in tl.static_range(1, SPLIT):
                    more = tl.load(
                        y_ptr + part * plane + offs, mask=ok, other=0.0, cache_modifier=".cg"
                    )
                    d += more
                d = _rnd(d, DT)
            g = tl.load(gpost_ptr + offs, mask=ok, other=0.0, eviction_policy=KEEP)
            g = g.to(tl.float32)
        if F_HAS_SCALAR:
            scalar = tl.load(scalar_ptr).to(tl.float32)
        if F_PRE_NORM:
            g2 = tl.load(gpre_ptr + offs, mask=ok, other=0.0, eviction_policy=KEEP)
            g2 = g2.to(tl.float32)
        if F_FROM_TOKEN:
            h = _rnd(h * res_scale, DT)
        if F_HAS_DELTA:
            r1 = 1.0 / tl.sqrt(tl.sum(d * d, axis=0) / HID + eps)
            h = _rnd(h + _rnd(d * r1 * g, DT), DT)
        if F_HAS_SCALAR:
            h = _rnd(h * scalar, DT)
        tl.store(res_out_ptr + offs, h.to(DT), mask=ok & write)
        if F_PRE_NORM:
            r2 = 1.0 / tl.sqrt(tl.sum(h * h, axis=0) / HID + eps)
            tl.store(xin_ptr + offs, _rnd(h * r2 * g2, DT).to(DT), mask=ok)
        return h

    @triton.jit
    def _ple_gate(
        y,
        rows,
        row_ok,
        NR,
        tok,
        ple_ptr,
        norm_ptr,
        table_ptr,
        offset,
        stride,
        table_scale,
        out_scale,
        eps,
        DT: tl.constexpr,
        AUX_BLOCK: tl.constexpr,
    ):
        """gelu(y) times this layer's per-layer input on `rows`: rmsnorm of the layer's chunk
        of the projected per-layer inputs (at `offset`) plus the token's scaled table row."""
        chunk = tl.arange(0, AUX_BLOCK)
        chunk_ok = chunk < NR
        projected = tl.load(ple_ptr + offset + chunk, mask=chunk_ok, other=0.0).to(tl.float32)
        r3 = 1.0 / tl.sqrt(tl.sum(projected * projected, axis=0) / NR + eps)
        mine = tl.load(ple_ptr + offset + rows, mask=row_ok, other=0.0).to(tl.float32)
        norm_w = tl.load(norm_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
        looked = tl.load(table_ptr + tok * stride + offset + rows, mask=row_ok)
        looked = _rnd(looked.to(tl.float32) * table_scale, DT)
        per_layer = _rnd(_rnd(_rnd(mine * r3 * norm_w, DT) + looked, DT) * out_scale, DT)
        return _rnd(_rnd(_gelu(y), DT) * per_layer, DT)

    @triton.jit
    def _epilogue(
        acc,
        acc2,
        xsq,
        rows,
        row_ok,
        block,
        tok,
        y_ptr,
        scale_ptr,
        NR,
        aux_ptr,
        aux2_ptr,
        aux3_ptr,
        aux_offset,
        aux_stride,
        aux_scale,
        out_scale,
        eps,
        DT: tl.constexpr,
        EPI: tl.constexpr,
        QUANT: tl.constexpr,
        AUX_BLOCK: tl.constexpr,
    ):
        """Row sums of the [BN, BK] partial products `acc` (and `acc2`, the up rows of GEGLU)
        through the epilogue EPI into y (SOFTCAP_ARGMAX: this row block's max and its first
        index into aux and aux2 at `block`; SCREEN: each row's upper bound into aux, the
        block's largest lower bound into aux2[0] by atomic max, with `xsq` the input's squares
        summed by column lane)."""
        y = tl.sum(acc, axis=1)
        if QUANT:
            # int8 weights: one scale per output row (of each half for GEGLU).
            y = y * tl.load(scale_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
        if EPI != _SCREEN:
            y = _rnd(y, DT)
        if EPI == _SCALE:
            y = _rnd(y * out_scale, DT)
        elif EPI == _GEGLU:
            up = tl.sum(acc2, axis=1)
            if QUANT:
                up = up * tl.load(scale_ptr + rows + NR, mask=row_ok, other=0.0).to(tl.float32)
            up = _rnd(up, DT)
            y = _rnd(_rnd(_gelu(y), DT) * up, DT)
        elif EPI == _PLE_GATE:
            y = _ple_gate(
                y,
                rows,
                row_ok,
                NR,
                tok,
                aux_ptr,
                aux2_ptr,
                aux3_ptr,
                aux_offset,
                aux_stride,
                aux_scale,
                out_scale,
                eps,
                DT,
                AUX_BLOCK,
            )
        elif EPI == _SOFTCAP_ARGMAX:
            y = tl.where(row_ok, _softcap(y, out_scale, DT), float("-inf"))
            best = tl.max(y, axis=0)
            first = tl.min(tl.where(y == best, rows, 2147483647), axis=0)
            tl.store(aux_ptr + block, best)
            tl.store(aux2_ptr + block, first)
        elif EPI == _SCREEN:
            # y is the int8 screen's logit before rounding; the exact one (bf16 weights,
            # `head_verify_kernel`) is within radius * |x| of it (aux3: the per-row radius).
            reach = tl.load(aux3_ptr + rows, mask=row_ok, other=0.0) * tl.sqrt(tl.sum(xsq, axis=0))
            upper, lower = _screen_bounds(y, reach, row_ok, out_scale, DT)
            tl.store(aux_ptr + rows, upper, mask=row_ok)
            tl.atomic_max(aux2_ptr, tl.max(lower, axis=0))
        if EPI != _SOFTCAP_ARGMAX and EPI != _SCREEN:
            tl.store(y_ptr + rows, y.to(DT), mask=row_ok)

    @triton.jit
    def _flat_tile(
        w_ptr,
        t,
        t_end,
        kt_n,
        NR,
        K,
        BN: tl.constexpr,
        BK: tl.constexpr,
        UP: tl.constexpr,
        STREAM: tl.constexpr,
    ):
        """Weight tile t (row block t // kt_n, column tile t % kt_n) of a FLAT mat-vec, and
        with UP the matching up rows (NR further on); nothing is read past t_end."""
        block = t // kt_n
        rows = block * BN + tl.arange(0, BN)
        cols = (t - block * kt_n) * BK + tl.arange(0, BK)
        mask = (rows < NR)[:, None] & (cols < K)[None, :] & (t < t_end)
        offsets = rows.to(tl.int64)[:, None] * K + cols[None, :]
        w = tl.load(w_ptr + offsets, mask=mask, other=0.0, eviction_policy=STREAM)
        w2 = w
        if UP:
            w2 = tl.load(w_ptr + offsets + NR * K, mask=mask, other=0.0, eviction_policy=STREAM)
        return w, w2

    @triton.jit
    def matvec_kernel(
        w_ptr,
        y_ptr,
        NR,
        K,
        x_ptr,
        tok_ptr,
        res_ptr,
        gpost_ptr,
        scalar_ptr,
        gpre_ptr,
        res_out_ptr,
        xin_ptr,
        counter_ptr,
        aux_ptr,
        aux2_ptr,
        aux3_ptr,
        scale_ptr,
        HID,
        res_scale,
        out_scale,
        aux_scale,
        eps,
        aux_offset,
        aux_stride,
        EMBED_INPUT: tl.constexpr,
        EPI: tl.constexpr,
        FINAL: tl.constexpr,
        F_FROM_TOKEN: tl.constexpr,
        F_HAS_DELTA: tl.constexpr,
        F_HAS_SCALAR: tl.constexpr,
        F_PRE_NORM: tl.constexpr,
        AUX_BLOCK: tl.constexpr,
        HB: tl.constexpr,
        BN: tl.constexpr,
        BK: tl.constexpr,
        EVEN_K: tl.constexpr,
        USE_PDL: tl.constexpr,
        QUANT: tl.constexpr,
        STREAM: tl.constexpr,
        KEEP: tl.constexpr,
        SKIP_FINAL: tl.constexpr = 0,
        FLAT: tl.constexpr = 0,
        PRO_FINAL: tl.constexpr = False,
    ):
        """y[NR] = W[NR (x2 for GEGLU), K] @ x, then an epilogue; with FINAL, the last
        program to finish also rebuilds the residual stream for the next stage.

        x is read as is, or (EMBED_INPUT) is the token's embedding row of table x_ptr times
        res_scale. FINAL: res_out = (res + rmsnorm(y) * g_post) * scalar over HID elements
        (res may be the token's embedding row, y may be left out, scalar too), and with
        F_PRE_NORM also xin = rmsnorm(res_out) * g_pre: the next mat-vec's input. Only one
        program does this (the last to arrive at counter_ptr), so no mat-vec recomputes a
        norm, and with PDL the next kernel's first weight loads overlap it.

        PRO_FINAL: the previous mat-vec's finalizer is this one's prologue, done by every
        program: x = res + rmsnorm(x_ptr's delta) * g_post (res_ptr, gpost_ptr), which the
        first program also stores into res_out_ptr. Needs one column tile (BK >= HB, FLAT 0),
        and saves a launch and a round trip for a mat-vec of few programs (the PLE gate).

        FLAT (1): the grid is one wave of programs, each taking a contiguous run of the row
        blocks and streaming them tile after tile, the next tile's load issued before this
        one's arithmetic (0: one row block a program, Triton's pipelining of the column
        loop, as many waves as blocks need).

        SKIP_FINAL: 2 leaves the counter and the finalizer's work out, for a `finalize_kernel`
        launch after this one to do (or, timing only, nothing); 1 (timing only, results are
        wrong) leaves out the work but keeps the counter.

        QUANT: W holds int8 codes and scale_ptr one scale per row (`Int8Linear`); the row
        sums are scaled before rounding. Pointers a variant does not use may be any tensor. `aux*` feed the epilogues:
        PLE_GATE reads the projected per-layer inputs (aux, at aux_offset), their norm weight
        (aux2) and the per-layer embedding table (aux3, row stride aux_stride, scale
        aux_scale); SOFTCAP_ARGMAX writes block maxima to aux and their indices to aux2;
        SCREEN (int8 codes of the lm_head) reads each row's error radius from aux3 and writes
        the rows' upper bounds to aux and the largest lower bound to aux2[0].
        """
        DT: tl.constexpr = y_ptr.dtype.element_ty
        pid = tl.program_id(0)
        if not EMBED_INPUT:
            _pdl_release(USE_PDL)
        if FLAT == 0:
            rows = pid * BN + tl.arange(0, BN)
            row_ok = rows < NR
            row_base = rows.to(tl.int64)[:, None] * K
            up_base = (rows + NR).to(tl.int64)[:, None] * K
            acc = tl.zeros((BN, BK), dtype=tl.float32)
            acc2 = tl.zeros((BN, BK), dtype=tl.float32)
            xsq = tl.zeros((BK,), dtype=tl.float32)
            cols0 = tl.arange(0, BK)
            # The first weight tile does not depend on the previous kernel: load it before waiting.
            if EVEN_K:
                first_mask = row_ok[:, None]
            else:
                first_mask = row_ok[:, None] & (cols0 < K)[None, :]
            w_first = tl.load(
                w_ptr + row_base + cols0[None, :],
                mask=first_mask,
                other=0.0,
                eviction_policy=STREAM,
            )
            w2_first = w_first
            if EPI == _GEGLU:
                w2_first = tl.load(
                    w_ptr + up_base + cols0[None, :],
                    mask=first_mask,
                    other=0.0,
                    eviction_policy=STREAM,
                )
        else:
            # One wave of programs, each streaming a contiguous run of row blocks tile by
            # tile with the next tile's load in flight during this one's arithmetic.
            cols0 = tl.arange(0, BK)
            kt_n = tl.cdiv(K, BK)
            blocks = tl.cdiv(NR, BN)
            t_begin = (pid * blocks // tl.num_programs(0)) * kt_n
            t_end = ((pid + 1) * blocks // tl.num_programs(0)) * kt_n
            w_cur, w2_cur = _flat_tile(
                w_ptr, t_begin, t_end, kt_n, NR, K, BN, BK, EPI == _GEGLU, STREAM
            )
        _pdl_wait(USE_PDL)
        if EMBED_INPUT:
            # The step's first launch: its dependents start only once the previous step has
            # finished, so that they may read the position before their own wait.
            _pdl_release(USE_PDL)

        tok = 0
        if EMBED_INPUT or F_FROM_TOKEN or EPI == _PLE_GATE:
            tok = tl.load(tok_ptr).to(tl.int64)
        x_base = x_ptr
        if EMBED_INPUT:
            x_base = x_ptr + tok * K
        if FLAT == 0:
            if PRO_FINAL:
                x = _finalize(
                    x_ptr,
                    tok,
                    res_ptr,
                    gpost_ptr,
                    scalar_ptr,
                    gpre_ptr,
                    res_out_ptr,
                    xin_ptr,
                    HID,
                    res_scale,
                    eps,
                    DT,
                    False,
                    True,
                    False,
                    False,
                    BK,
                    KEEP,
                    pid == 0,
                )
            else:
                x = tl.load(x_base + cols0, mask=cols0 < K, other=0.0).to(tl.float32)
            if EMBED_INPUT:
                x = _rnd(x * res_scale, DT)
            if EPI == _SCREEN:
                xsq += x * x
            acc += _widen(w_first, QUANT) * x[None, :]
            if EPI == _GEGLU:
                acc2 += _widen(w2_first, QUANT) * x[None, :]
            for start in range(BK, K, BK):
                cols = start + cols0
                col_ok = cols < K
                x = tl.load(x_base + cols, mask=col_ok, other=0.0).to(tl.float32)
                if EMBED_INPUT:
                    x = _rnd(x * res_scale, DT)
                if EPI == _SCREEN:
                    xsq += x * x
                if EVEN_K:
                    mask = row_ok[:, None]
                else:
                    mask = row_ok[:, None] & col_ok[None, :]
                w = tl.load(
                    w_ptr + row_base + cols[None, :], mask=mask, other=0.0, eviction_policy=STREAM
                )
                acc += _widen(w, QUANT) * x[None, :]
                if EPI == _GEGLU:
                    w2 = tl.load(
                        w_ptr + up_base + cols[None, :],
                        mask=mask,
                        other=0.0,
                        eviction_policy=STREAM,
                    )
                    acc2 += _widen(w2, QUANT) * x[None, :]

            _epilogue(
                acc,
                acc2,
                xsq,
                rows,
                row_ok,
                pid,
                tok,
                y_ptr,
                scale_ptr,
                NR,
                aux_ptr,
                aux2_ptr,
                aux3_ptr,
                aux_offset,
                aux_stride,
                aux_scale,
                out_scale,
                eps,
                DT,
                EPI,
                QUANT,
                AUX_BLOCK,
            )
        else:
            acc = tl.zeros((BN, BK), dtype=tl.float32)
            acc2 = tl.zeros((BN, BK), dtype=tl.float32)
            for t in range(t_begin, t_end):
                w_next, w2_next = _flat_tile(
                    w_ptr, t + 1, t_end, kt_n, NR, K, BN, BK, EPI == _GEGLU, STREAM
                )
                block = t // kt_n
                kt = t - block * kt_n
                cols = kt * BK + cols0
                x = tl.load(x_base + cols, mask=cols < K, other=0.0).to(tl.float32)
                if EMBED_INPUT:
                    x = _rnd(x * res_scale, DT)
                acc += _widen(w_cur, QUANT) * x[None, :]
                if EPI == _GEGLU:
                    acc2 += _widen(w2_cur, QUANT) * x[None, :]
                if kt == kt_n - 1:
                    rows = block * BN + tl.arange(0, BN)
                    _epilogue(
                        acc,
                        acc2,
                        # (SCREEN needs whole rows a program: no one-wave grid.)
                        tl.zeros((BK,), dtype=tl.float32),
                        rows,
                        rows < NR,
                        block,
                        tok,
                        y_ptr,
                        scale_ptr,
                        NR,
                        aux_ptr,
                        aux2_ptr,
                        aux3_ptr,
                        aux_offset,
                        aux_stride,
                        aux_scale,
                        out_scale,
                        eps,
                        DT,
                        EPI,
                        QUANT,
                        AUX_BLOCK,
                    )
                    acc = tl.zeros((BN, BK), dtype=tl.float32)
                    acc2 = tl.zeros((BN, BK), dtype=tl.float32)
                w_cur, w2_cur = w_next, w2_next

        if FINAL and SKIP_FINAL == 1:
            arrived = tl.atomic_add(counter_ptr, 1, sem="acq_rel")
            if arrived == tl.num_programs(0) - 1:
                tl.store(counter_ptr, 0)
        if FINAL and SKIP_FINAL == 0:
            arrived = tl.atomic_add(counter_ptr, 1, sem="acq_rel")
            if arrived == tl.num_programs(0) - 1:
                _finalize(
                    y_ptr,
                    tok,
                    res_ptr,
                    gpost_ptr,
                    scalar_ptr,
                    gpre_ptr,
                    res_out_ptr,
                    xin_ptr,
                    HID,
                    res_scale,
                    eps,
                    DT,
                    F_FROM_TOKEN,
                    F_HAS_DELTA,
                    F_HAS_SCALAR,
                    F_PRE_NORM,
                    HB,
                    KEEP,
                )
                # Reset for the next step (kernel completion publishes it): a plain store,
                # not an atomic whose reply the program would wait for.
                tl.store(counter_ptr, 0)

    @triton.jit
    def finalize_kernel(
        y_ptr,
        tok_ptr,
        res_ptr,
        gpost_ptr,
        scalar_ptr,
        gpre_ptr,
        res_out_ptr,
        xin_ptr,
        HID,
        res_scale,
        eps,
        plane,
        F_FROM_TOKEN: tl.constexpr,
        F_HAS_DELTA: tl.constexpr,
        F_HAS_SCALAR: tl.constexpr,
        F_PRE_NORM: tl.constexpr,
        HB: tl.constexpr,
        KEEP: tl.constexpr,
        SPLIT: tl.constexpr,
        USE_PDL: tl.constexpr,
    ):
        """A mat-vec's finalizer (`_finalize`) as a launch of its own after the mat-vec has
        finished, so no program of the mat-vec waits on a counter. One program a column:
        column program_id(0) finalizes rows [column * HID, (column + 1) * HID) of every buffer
        (from the embedding row of token tok_ptr[column] with F_FROM_TOKEN); the decode step
        launches one program, the verify step (`fused_verify`) one for each of its W tokens.
        With SPLIT > 1, y_ptr holds a split mat-mat's SPLIT float32 partials, `plane` apart."""
        DT: tl.constexpr = res_out_ptr.dtype.element_ty
        column = tl.program_id(0)
        _pdl_release(USE_PDL)
        _pdl_wait(USE_PDL)
        own = column.to(tl.int64) * HID
        tok = 0
        res = res_ptr
        if F_FROM_TOKEN:
            tok = tl.load(tok_ptr + column).to(tl.int64)
        else:
            res = res_ptr + own
        _finalize(
            y_ptr + own,
            tok,
            res,
            gpost_ptr,
            scalar_ptr,
            gpre_ptr,
            res_out_ptr + own,
            xin_ptr + own,
            HID,
            res_scale,
            eps,
            DT,
            F_FROM_TOKEN,
            F_HAS_DELTA,
            F_HAS_SCALAR,
            F_PRE_NORM,
            HB,
            KEEP,
            True,
            plane,
            SPLIT,
        )

    @triton.jit
    def _head_norm_rope(
        src,
        norm_ptr,
        cos1,
        cos2,
        sin1,
        sin2,
        eps,
        DT: tl.constexpr,
        D: tl.constexpr,
        HAS_WEIGHT: tl.constexpr,
        ROPE: tl.constexpr,
    ):
        """RMSNorm over one head (two halves), then rotate_half RoPE; float32 values."""
        half = tl.arange(0, D // 2)
        x1 = tl.load(src + half).to(tl.float32)
        x2 = tl.load(src + D // 2 + half).to(tl.float32)
        r = 1.0 / tl.sqrt((tl.sum(x1 * x1, axis=0) + tl.sum(x2 * x2, axis=0)) / D + eps)
        if HAS_WEIGHT:
            n1 = _rnd(x1 * r * tl.load(norm_ptr + half).to(tl.float32), DT)
            n2 = _rnd(x2 * r * tl.load(norm_ptr + D // 2 + half).to(tl.float32), DT)
        else:
            n1 = _rnd(x1 * r, DT)
            n2 = _rnd(x2 * r, DT)
        if ROPE:
            o1 = _rnd(_rnd(n1 * cos1, DT) + _rnd(-n2 * sin1, DT), DT)
            o2 = _rnd(_rnd(n2 * cos2, DT) + _rnd(n1 * sin2, DT), DT)
            return o1, o2
        return n1, n2

    @triton.jit
    def _store_new_kv(
        qkv_ptr,
        knorm_ptr,
        k_cache_ptr,
        v_cache_ptr,
        cos1,
        cos2,
        sin1,
        sin2,
        pos,
        j,
        slots,
        eps,
        DT: tl.constexpr,
        HEADS: tl.constexpr,
        KV_HEADS: tl.constexpr,
        D: tl.constexpr,
        K_EQ_V: tl.constexpr,
    ):
        """KV head j's new key (normed, rotated) and value (normed) into the slot of `pos`."""
        half = tl.arange(0, D // 2)
        key_src = qkv_ptr + HEADS * D + j * D
        value_src = key_src if K_EQ_V else qkv_ptr + (HEADS + KV_HEADS) * D + j * D
        k1, k2 = _head_norm_rope(key_src, knorm_ptr, cos1, cos2, sin1, sin2, eps, DT, D, True, True)
        v1, v2 = _head_norm_rope(
            value_src, knorm_ptr, cos1, cos2, sin1, sin2, eps, DT, D, False, False
        )
        slot = (j.to(tl.int64) * slots + pos % slots) * D
        tl.store(k_cache_ptr + slot + half, k1.to(DT))
        tl.store(k_cache_ptr + slot + D // 2 + half, k2.to(DT))
        tl.store(v_cache_ptr + slot + half, v1.to(DT))
        tl.store(v_cache_ptr + slot + D // 2 + half, v2.to(DT))

    @triton.jit
    def _rows_norm_rope(
        x, x_partner, weight, weight_partner, cos, sin, eps, DT: tl.constexpr, D: tl.constexpr
    ):
        """`_head_norm_rope` of rows x [G, D] already loaded, each element beside its
        rotate_half partner (x_partner: element d + D/2 mod D), so the halves need no joining.
        Same rounding points; float32 values."""
        dims = tl.arange(0, D)
        r = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / D + eps)
        n = _rnd(x * r[:, None] * weight[None, :], DT)
        n_partner = _rnd(x_partner * r[:, None] * weight_partner[None, :], DT)
        # rotate_half: -x2 against the first half, +x1 against the second.
        sign = tl.where(dims < D // 2, -1.0, 1.0)
        rotated = _rnd(sign[None, :] * n_partner * sin[None, :], DT)
        return _rnd(_rnd(n * cos[None, :], DT) + rotated, DT)

    @triton.jit
    def _group_norm_rope(
        src, g_ok, weight, weight_partner, cos, sin, eps, DT: tl.constexpr, D: tl.constexpr
    ):
        """`_head_norm_rope` for several query heads at once (row pointers `src`, [G, 1]) in
        whole rows (`_rows_norm_rope`: each element read a second time beside its partner)."""
        dims = tl.arange(0, D)
        partner = (dims + D // 2) % D
        x = tl.load(src + dims[None, :], mask=g_ok[:, None], other=0.0).to(tl.float32)
        x_partner = tl.load(src + partner[None, :], mask=g_ok[:, None], other=0.0)
        return _rows_norm_rope(
            x, x_partner.to(tl.float32), weight, weight_partner, cos, sin, eps, DT, D
        )

    @triton.jit
    def _attend_block(q, k, v, ok, m, total, acc, DT: tl.constexpr, IEEE: tl.constexpr):
        """One block of keys and values (rows `ok`) into the online softmax state."""
        if IEEE:
            scores = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            scores = tl.dot(q, tl.trans(k))
        scores = tl.where(ok[None, :], _rnd(scores, DT), float("-inf"))
        new_m = tl.maximum(m, tl.max(scores, axis=1))
        alpha = tl.exp(m - new_m)
        weights = tl.exp(scores - new_m[:, None])
        total = total * alpha + tl.sum(weights, axis=1)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(weights, v.to(tl.float32), input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(weights.to(DT), v)
        return new_m, total, acc

    @triton.jit
    def qk_prep_kernel(
        qkv_ptr,
        q_out_ptr,
        qnorm_ptr,
        knorm_ptr,
        k_cache_ptr,
        v_cache_ptr,
        cos_ptr,
        sin_ptr,
        pos_ptr,
        eps,
        slots,
        HEADS: tl.constexpr,
        KV_HEADS: tl.constexpr,
        D: tl.constexpr,
        K_EQ_V: tl.constexpr,
        USE_PDL: tl.constexpr,
    ):
        """Program h < HEADS: q head h normed and rotated into q_out. Program HEADS + j:
        KV head j's key (normed, rotated) and value (normed) into the cache slot of `pos`."""
        DT: tl.constexpr = q_out_ptr.dtype.element_ty
        pid = tl.program_id(0)
        _pdl_release(USE_PDL)
        _pdl_wait(USE_PDL)
        pos = tl.load(pos_ptr).to(tl.int64)
        half = tl.arange(0, D // 2)
        cos1 = tl.load(cos_ptr + pos * D + half).to(tl.float32)
        cos2 = tl.load(cos_ptr + pos * D + D // 2 + half).to(tl.float32)
        sin1 = tl.load(sin_ptr + pos * D + half).to(tl.float32)
        sin2 = tl.load(sin_ptr + pos * D + D // 2 + half).to(tl.float32)
        if pid < HEADS:
            o1, o2 = _head_norm_rope(
                qkv_ptr + pid * D, qnorm_ptr, cos1, cos2, sin1, sin2, eps, DT, D, True, True
            )
            tl.store(q_out_ptr + pid * D + half, o1.to(DT))
            tl.store(q_out_ptr + pid * D + D // 2 + half, o2.to(DT))
        else:
            _store_new_kv(
                qkv_ptr,
                knorm_ptr,
                k_cache_ptr,
                v_cache_ptr,
                cos1,
                cos2,
                sin1,
                sin2,
                pos,
                pid - HEADS,
                slots,
                eps,
                DT,
                HEADS,
                KV_HEADS,
                D,
                K_EQ_V,
            )

    @triton.jit
    def attention_kernel(
        q_ptr,
        k_cache_ptr,
        v_cache_ptr,
        out_ptr,
        m_ptr,
        l_ptr,
        acc_ptr,
        counter_ptr,
        pos_ptr,
        qkv_ptr,
        qnorm_ptr,
        knorm_ptr,
        cos_ptr,
        sin_ptr,
        eps,
        slots,
        window,
        GROUP: tl.constexpr,
        GP: tl.constexpr,
        MERGE_AT_ONCE: tl.constexpr,
        BG: tl.constexpr,
        D: tl.constexpr,
        BS: tl.constexpr,
        SPLITS: tl.constexpr,
        SLIDING: tl.constexpr,
        PREP: tl.constexpr,
        WRITE_KV: tl.constexpr,
        HEADS: tl.constexpr,
        KV_HEADS: tl.constexpr,
        K_EQ_V: tl.constexpr,
        IEEE: tl.constexpr,
        USE_PDL: tl.constexpr,
        EARLY: tl.constexpr,
        ABLATE: tl.constexpr,
        PREWAIT: tl.constexpr = False,
        MERGE_LAUNCH: tl.constexpr = False,
    ):
        """One query token against the cached positions it sees, for the GROUP query heads of
        KV head program_id(0); program_id(1) takes one of SPLITS equal runs of positions.

        Positions visible: max(0, pos - window + 1)..pos for sliding layers, 0..pos for global
        ones; position p sits in slot p % slots. Scores are unscaled (the q/k norms stand in for
        1/sqrt(d)) and rounded to the model dtype as transformers' bf16 matmul does; softmax is
        float32 and online. Each split leaves (max, sum, weighted values) per head; the last
        split of a KV head to finish merges them into `out`. With SPLITS == 1 the one program
        of a KV head writes `out` itself: no partials, counter or merge.

        q is read from q_ptr as `qk_prep_kernel` left it, or (PREP) made here from the qkv
        mat-vec's output: every program norms and rotates its own GROUP heads, in registers.
        WRITE_KV (with PREP, layers that own their cache): the program whose run holds `pos`
        writes KV head program_id(0)'s new key and value into the slot of `pos` and waits for
        its own stores before reading keys. No other program reads that slot: the others read
        positions low..pos-1 only, whose slots differ from pos's (a ring holds more than
        `window` slots, a global cache one per position), and masked loads read nothing.

        EARLY shortens the chain of dependent loads: the query rows (and the new key and value
        rows) are loaded before the position, and the first block of keys and values right
        after it, before the q/k norms and RoPE. With WRITE_KV every program then makes the new
        key and value in registers and puts them in place of whatever it read for `pos`'s slot,
        so the program holding `pos` stores them without a barrier before its key loop.

        MERGE_LAUNCH: every split only leaves its partials, and `merge_kernel`, launched after
        this kernel, merges them (no counter, no program waiting on an atomic's reply).

        PREWAIT (with EARLY) reads the position, the cos/sin rows and the first block of keys
        and values before waiting for the previous kernel: none of them depends on it. The
        position changes only in the step's last launch, and positions before `pos` were
        cached by earlier steps; the new position's row is put in after the wait (from this
        program's registers when it writes it, else loaded from the cache a source layer
        filled). The step's first launch releases its dependents only after its own wait
        (`matvec_kernel`'s EMBED_INPUT), so no launch of a step starts before the previous
        step's last one has finished.

        ABLATE (timing only, results are wrong; 0 in real use) leaves parts out to see what
        they cost: bit ABLATE_KEYS the key loop (no key or value loads, no dots; the query is
        the output), ABLATE_QUERY the query (zeros: no qkv, norm, RoPE or cos/sin loads, no
        cache write), ABLATE_MERGE the partials, counter and merge (every program writes its
        own state to `out`). All three leave an empty kernel: the launch's own cost.
        """
        DT: tl.constexpr = out_ptr.dtype.element_ty
        # The ABLATE_* bits (literals: the interpreter passes ABLATE as a plain int).
        KEYS: tl.constexpr = (ABLATE & 1) == 0
        QUERY: tl.constexpr = (ABLATE & 2) == 0
        MERGE: tl.constexpr = (ABLATE & 4) == 0
        kvh = tl.program_id(0)
        split = tl.program_id(1)
        _pdl_release(USE_PDL)
        g = tl.arange(0, BG)
        g_ok = g < GROUP
        dims = tl.arange(0, D)
        partner = (dims + D // 2) % D
        heads = kvh * GROUP + g
        if PREP and QUERY:
            # Weights do not depend on the previous kernel: load them before waiting.
            q_weight = tl.load(qnorm_ptr + dims).to(tl.float32)
            q_weight_partner = tl.load(qnorm_ptr + partner).to(tl.float32)
            if EARLY and WRITE_KV:
                k_weight = tl.load(knorm_ptr + dims).to(tl.float32)
                k_weight_partner = tl.load(knorm_ptr + partner).to(tl.float32)
        keys = tl.arange(0, BS)
        cache_base = kvh.to(tl.int64) * slots * D
        if PREWAIT:
            pos = tl.load(pos_ptr).to(tl.int64)
            if SLIDING:
                low = tl.maximum(pos - window + 1, 0)
            else:
                low = pos * 0
            count = pos - low + 1
            per = (count + SPLITS - 1) // SPLITS
            begin = low + split * per
            end = tl.minimum(begin + per, pos + 1)
            if KEYS:
                # Positions before `pos` only: its row is this step's.
                p0 = begin + keys
                ok0 = p0 < end
                slot0 = cache_base + (p0 % slots) * D
                cached = (p0 < pos)[:, None]
                k0 = tl.load(k_cache_ptr + slot0[:, None] + dims[None, :], mask=cached, other=0.0)
                v0 = tl.load(v_cache_ptr + slot0[:, None] + dims[None, :], mask=cached, other=0.0)
            if PREP and QUERY:
                cos = tl.load(cos_ptr + pos * D + dims).to(tl.float32)
                sin = tl.load(sin_ptr + pos * D + dims).to(tl.float32)
        _pdl_wait(USE_PDL)
        if EARLY and QUERY:
            # Rows that do not depend on the position: in flight while it is read.
            if PREP:
                q_src = qkv_ptr + heads[:, None] * D
                q_rows = tl.load(q_src + dims[None, :], mask=g_ok[:, None], other=0.0)
                q_partners = tl.load(q_src + partner[None, :], mask=g_ok[:, None], other=0.0)
                if WRITE_KV:
                    key_src = qkv_ptr + (HEADS + kvh) * D
                    key_row = tl.load(key_src + dims[None, :]).to(tl.float32)
                    key_partner = tl.load(key_src + partner[None, :]).to(tl.float32)
                    if K_EQ_V:
                        value_row = key_row
                    else:
                        value_src = qkv_ptr + (HEADS + KV_HEADS + kvh) * D
                        value_row = tl.load(value_src + dims[None, :]).to(tl.float32)
            else:
                q = tl.load(
                    q_ptr + heads[:, None] * D + dims[None, :], mask=g_ok[:, None], other=0.0
                )
        if not PREWAIT:
            pos = tl.load(pos_ptr).to(tl.int64)
            if SLIDING:
                low = tl.maximum(pos - window + 1, 0)
            else:
                low = pos * 0
            count = pos - low + 1
            per = (count + SPLITS - 1) // SPLITS
            begin = low + split * per
            end = tl.minimum(begin + per, pos + 1)

        if EARLY and KEYS and not PREWAIT:
            # The first block of keys and values: in flight during the norms and RoPE.
            p0 = begin + keys
            ok0 = p0 < end
            slot0 = cache_base + (p0 % slots) * D
            k0 = tl.load(k_cache_ptr + slot0[:, None] + dims[None, :], mask=ok0[:, None], other=0.0)
            v0 = tl.load(v_cache_ptr + slot0[:, None] + dims[None, :], mask=ok0[:, None], other=0.0)
        if not QUERY:
            q = tl.zeros((BG, D), dtype=DT)
        elif PREP:
            if not PREWAIT:
                cos = tl.load(cos_ptr + pos * D + dims).to(tl.float32)
                sin = tl.load(sin_ptr + pos * D + dims).to(tl.float32)
            if EARLY:
                q = _rows_norm_rope(
                    q_rows.to(tl.float32),
                    q_partners.to(tl.float32),
                    q_weight,
                    q_weight_partner,
                    cos,
                    sin,
                    eps,
                    DT,
                    D,
                ).to(DT)
                if WRITE_KV:
                    new_key = _rows_norm_rope(
                        key_row, key_partner, k_weight, k_weight_partner, cos, sin, eps, DT, D
                    ).to(DT)
                    r_value = 1.0 / tl.sqrt(tl.sum(value_row * value_row, axis=1) / D + eps)
                    new_value = _rnd(value_row * r_value[:, None], DT).to(DT)
                    if (begin <= pos) & (pos < end):
                        slot = (kvh.to(tl.int64) * slots + pos % slots) * D
                        tl.store(k_cache_ptr + slot + dims[None, :], new_key)
                        tl.store(v_cache_ptr + slot + dims[None, :], new_value)
            else:
                q = _group_norm_rope(
                    qkv_ptr + heads[:, None] * D,
                    g_ok,
                    q_weight,
                    q_weight_partner,
                    cos,
                    sin,
                    eps,
                    DT,
                    D,
                ).to(DT)
                if WRITE_KV:
                    if (begin <= pos) & (pos < end):
                        half = tl.arange(0, D // 2)
                        _store_new_kv(
                            qkv_ptr,
                            knorm_ptr,
                            k_cache_ptr,
                            v_cache_ptr,
                            tl.load(cos_ptr + pos * D + half).to(tl.float32),
                            tl.load(cos_ptr + pos * D + D // 2 + half).to(tl.float32),
                            tl.load(sin_ptr + pos * D + half).to(tl.float32),
                            tl.load(sin_ptr + pos * D + D // 2 + half).to(tl.float32),
                            pos,
                            kvh,
                            slots,
                            eps,
                            DT,
                            HEADS,
                            KV_HEADS,
                            D,
                            K_EQ_V,
                        )
                    # The key loop below reads the slot just written (by this program's threads).
                    tl.debug_barrier()
        elif not EARLY:
            q = tl.load(q_ptr + heads[:, None] * D + dims[None, :], mask=g_ok[:, None], other=0.0)
        m = tl.full((BG,), float("-inf"), dtype=tl.float32)
        total = tl.zeros((BG,), dtype=tl.float32)
        acc = tl.zeros((BG, D), dtype=tl.float32)
        start = begin
        if EARLY and KEYS:
            if PREP and WRITE_KV and QUERY:
                k0 = tl.where((p0 == pos)[:, None], new_key, k0)
                v0 = tl.where((p0 == pos)[:, None], new_value, v0)
            elif PREWAIT:  # noqa: SIM102 (a constexpr, then a runtime condition)
                # The new position's row, cached in this step by a source layer (or the prep
                # launch): read it now that the previous kernels are done.
                if (begin <= pos) & (pos < begin + BS):
                    fresh = (p0 == pos)[:, None]
                    k0 = tl.where(
                        fresh,
                        tl.load(k_cache_ptr + slot0[:, None] + dims[None, :], mask=fresh),
                        k0,
                    )
                    v0 = tl.where(
                        fresh,
                        tl.load(v_cache_ptr + slot0[:, None] + dims[None, :], mask=fresh),
                        v0,
                    )
            # An empty run (more splits than positions) leaves the state as it is.
            if begin < end:
                m, total, acc = _attend_block(q, k0, v0, ok0, m, total, acc, DT, IEEE)
            start = begin + BS
        if not KEYS:
            # The query as the output, so that the compiler keeps its prep; a finite state
            # (NaN would cost no time, but warns under the interpreter).
            m = tl.zeros((BG,), dtype=tl.float32)
            total = tl.full((BG,), 1.0, dtype=tl.float32)
            acc = q.to(tl.float32)
        else:
            for first in range(start, end, BS):
                p = first + keys
                ok = p < end
                slot = cache_base + (p % slots) * D
                k = tl.load(
                    k_cache_ptr + slot[:, None] + dims[None, :], mask=ok[:, None], other=0.0
                )
                v = tl.load(
                    v_cache_ptr + slot[:, None] + dims[None, :], mask=ok[:, None], other=0.0
                )
                if EARLY and PREP and WRITE_KV and QUERY:
                    # This program may have stored them just now: use its registers, not the load.
                    k = tl.where((p == pos)[:, None], new_key, k)
                    v = tl.where((p == pos)[:, None], new_value, v)
                m, total, acc = _attend_block(q, k, v, ok, m, total, acc, DT, IEEE)

        if SPLITS == 1 or not MERGE:
            # The whole run in this program: normalize and write, nothing to merge.
            merged = acc / total[:, None]
            out_rows = heads[:, None] * D + dims[None, :]
            tl.store(out_ptr + out_rows, merged.to(DT), mask=g_ok[:, None])
        else:
            part = heads * SPLITS + split
            tl.store(m_ptr + part, m, mask=g_ok)
            tl.store(l_ptr + part, total, mask=g_ok)
            tl.store(acc_ptr + part[:, None] * D + dims[None, :], acc, mask=g_ok[:, None])
            arrived = -1
            if not MERGE_LAUNCH:
                arrived = tl.atomic_add(counter_ptr + kvh, 1, sem="acq_rel")
            if arrived == SPLITS - 1:
                splits = tl.arange(0, SPLITS)
                if MERGE_AT_ONCE:
                    # Every query head of this KV head at once: one round of loads.
                    members = tl.arange(0, GP)
                    member_ok = members < GROUP
                    parts = (kvh * GROUP + members)[:, None] * SPLITS + splits[None, :]
                    ms = tl.load(
                        m_ptr + parts, mask=member_ok[:, None], other=0.0, cache_modifier=".cg"
                    )
                    ls = tl.load(
                        l_ptr + parts, mask=member_ok[:, None], other=1.0, cache_modifier=".cg"
                    )
                    scale = tl.exp(ms - tl.max(ms, axis=1)[:, None])
                    values = tl.load(
                        acc_ptr + parts[:, :, None] * D + dims[None, None, :],
                        mask=member_ok[:, None, None],
                        other=0.0,
                        cache_modifier=".cg",
                    )
                    merged = tl.sum(values * scale[:, :, None], axis=1)
                    merged = merged / tl.sum(scale * ls, axis=1)[:, None]
                    out_rows = (kvh * GROUP + members)[:, None] * D + dims[None, :]
                    tl.store(out_ptr + out_rows, merged.to(DT), mask=member_ok[:, None])
                else:
                    for member in tl.static_range(GROUP):
                        head = kvh * GROUP + member
                        parts = head * SPLITS + splits
                        ms = tl.load(m_ptr + parts, cache_modifier=".cg")
                        ls = tl.load(l_ptr + parts, cache_modifier=".cg")
                        scale = tl.exp(ms - tl.max(ms, axis=0))
                        values = tl.load(
                            acc_ptr + parts[:, None] * D + dims[None, :], cache_modifier=".cg"
                        )
                        merged = tl.sum(values * scale[:, None], axis=0)
                        merged = merged / tl.sum(scale * ls, axis=0)
                        tl.store(out_ptr + head * D + dims, merged.to(DT))
                # Reset for the next step (every split has arrived; kernel completion
                # publishes it): a plain store, not an atomic whose reply the program awaits.
                tl.store(counter_ptr + kvh, 0)

    @triton.jit
    def merge_kernel(
        m_ptr,
        l_ptr,
        acc_ptr,
        out_ptr,
        SPLITS: tl.constexpr,
        D: tl.constexpr,
        DC: tl.constexpr,
        USE_PDL: tl.constexpr,
    ):
        """Dimensions [program_id(1) * DC, + DC) of query head program_id(0)'s attention
        output from the (max, sum, weighted values) each split of `attention_kernel`
        (MERGE_LAUNCH) left."""
        DT: tl.constexpr = out_ptr.dtype.element_ty
        head = tl.program_id(0)
        _pdl_release(USE_PDL)
        _pdl_wait(USE_PDL)
        dims = tl.program_id(1) * DC + tl.arange(0, DC)
        parts = head * SPLITS + tl.arange(0, SPLITS)
        ms = tl.load(m_ptr + parts, cache_modifier=".cg")
        ls = tl.load(l_ptr + parts, cache_modifier=".cg")
        values = tl.load(acc_ptr + parts[:, None] * D + dims[None, :], cache_modifier=".cg")
        scale = tl.exp(ms - tl.max(ms, axis=0))
        merged = tl.sum(values * scale[:, None], axis=0) / tl.sum(scale * ls, axis=0)
        tl.store(out_ptr + head * D + dims, merged.to(DT))

    @triton.jit
    def head_verify_kernel(
        w_ptr,
        x_ptr,
        upper_ptr,
        floor_ptr,
        best_ptr,
        index_ptr,
        seen_ptr,
        NR,
        K,
        rows_per,
        cap,
        CH: tl.constexpr,
        C: tl.constexpr,
        BK: tl.constexpr,
        USE_PDL: tl.constexpr,
    ):
        """The exact greedy argmax after the int8 screen (matvec_kernel's SCREEN epilogue, or
        the verify step's matmat_kernel's for several columns).

        Program (p, c) takes rows [p * rows_per, (p + 1) * rows_per) of column c: its input
        at x_ptr[c * K], bounds at upper_ptr[c * NR] and floor at floor_ptr[c], its outputs at
        [c * programs + p] (the decode step has one column). The screen left each row's
        upper bound on its softcapped bf16 logit (upper_ptr) and the largest lower bound of
        any row (floor_ptr): a row whose upper bound is below that floor is below the
        maximum, and cannot tie it, so only the others (candidates) are computed from the
        bf16 weights, C at a time, CH rows' bounds read at a time. Bounds at or one bf16 step
        below the floor count as candidates too, in case the softcap's float32 tanh is not
        monotone at the last bit. Writes the program's (max, first index) like the lm_head's
        SOFTCAP_ARGMAX blocks, and how many candidates it computed (seen_ptr)."""
        DT: tl.constexpr = x_ptr.dtype.element_ty
        pid = tl.program_id(0)
        column = tl.program_id(1)
        x_ptr += column.to(tl.int64) * K
        upper_ptr += column.to(tl.int64) * NR
        _pdl_release(USE_PDL)
        _pdl_wait(USE_PDL)
        floor = tl.load(floor_ptr + column)
        floor = floor - tl.abs(floor) * 0.0078125  # 2^-7: at least one bf16 step
        start = pid * rows_per
        end = tl.minimum(start + rows_per, NR)
        slots = tl.arange(0, C)
        best = float("-inf")
        chosen = 2147483647
        seen = 0
        for chunk in range(start, end, CH):
            offs = chunk + tl.arange(0, CH)
            ok = offs < end
            upper = tl.load(upper_ptr + offs, mask=ok, other=float("-inf"))
            candidate = (ok & (upper >= floor)).to(tl.int32)
            found = tl.sum(candidate, axis=0)
            seen += found
            if found > 0:
                # The k-th candidate of the chunk is the row whose running count is k + 1.
                order = tl.cumsum(candidate, axis=0) - 1
                for group in range(0, found, C):
                    picked = (candidate[None, :] > 0) & (order[None, :] == (group + slots)[:, None])
                    rows = tl.sum(tl.where(picked, offs[None, :], 0), axis=1)
                    valid = group + slots < found
                    acc = tl.zeros((C, BK), dtype=tl.float32)
                    for k0 in range(0, K, BK):
                        cols = k0 + tl.arange(0, BK)
                        x = tl.load(x_ptr + cols, mask=cols < K, other=0.0).to(tl.float32)
                        w = tl.load(
                            w_ptr + rows.to(tl.int64)[:, None] * K + cols[None, :],
                            mask=valid[:, None] & (cols < K)[None, :],
                            other=0.0,
                        )
                        acc += w.to(tl.float32) * x[None, :]
                    y = _softcap(_rnd(tl.sum(acc, axis=1), DT), cap, DT)
                    y = tl.where(valid, y, float("-inf"))
                    top = tl.max(y, axis=0)
                    first = tl.min(tl.where(valid & (y == top), rows, 2147483647), axis=0)
                    # Rows come in increasing order: an equal maximum keeps the earlier row.
                    if top > best:
                        best = top
                        chosen = first
        at = column * tl.num_programs(0) + pid
        tl.store(best_ptr + at, best)
        tl.store(index_ptr + at, chosen)
        tl.store(seen_ptr + at, seen)

    @triton.jit
    def finish_kernel(
        best_ptr,
        index_ptr,
        blocks,
        token_ptr,
        position_ptr,
        count_ptr,
        history_ptr,
        slot_positions_ptr,
        ring,
        floor_ptr,
        BLOCK: tl.constexpr,
        USE_PDL: tl.constexpr,
        RESET_FLOOR: tl.constexpr,
    ):
        """The argmax over the vocabulary blocks (first index on ties, as torch.argmax), fed
        back as the next input token; record it, advance the position and the ring's map.
        RESET_FLOOR: the screened lm_head's floor back to -inf for the next step's atomics
        (every `head_verify_kernel` program has read it: it finished before this wait)."""
        _pdl_release(USE_PDL)
        _pdl_wait(USE_PDL)
        offs = tl.arange(0, BLOCK)
        best = float("-inf")
        chosen = 0
        for start in range(0, blocks, BLOCK):
            ok = start + offs < blocks
            values = tl.load(best_ptr + start + offs, mask=ok, other=float("-inf"))
            indices = tl.load(index_ptr + start + offs, mask=ok, other=2147483647)
            top = tl.max(values, axis=0)
            first = tl.min(tl.where(values == top, indices, 2147483647), axis=0)
            if top > best:
                best = top
                chosen = first
        pos = tl.load(position_ptr)
        count = tl.load(count_ptr)
        token = chosen.to(tl.int64)
        tl.store(token_ptr, token)
        tl.store(history_ptr + count, token)
        tl.store(slot_positions_ptr + pos % ring, pos)
        tl.store(position_ptr, pos + 1)
        tl.store(count_ptr, count + 1)
        if RESET_FLOOR:
            tl.store(floor_ptr, float("-inf"))
