"""Triton kernels of the fused verify step (`fused_verify.py`): the fused decode step's layer
(`fused_kernels.py`) for W tokens at once, reading every weight once.

- `matmat_kernel` is `matvec_kernel` for W activation columns: each program multiplies its
  weight rows by a tile of the W columns (padded to WP >= 16, the least `tl.dot` takes: tensor
  cores on a GPU) with the same epilogues applied per column (SCALE, GEGLU, PLE_GATE with each
  column's own token, SOFTCAP_ARGMAX keeping each column's block maximum). With FINAL the last
  program to finish rebuilds the residual stream of all W columns (`_finalize_columns`).
- `fused_kernels.finalize_kernel` does that instead as a launch of its own after the mat-mat, one
  program a column (the decode step's `_finalize`): no counter, columns side by side.
- `verify_prep_kernel` norms and rotates the W queries into a buffer and writes the W new keys
  and values into the cache: one program per (head, column), reusing the decode step's helpers.
- `verify_attention_kernel` is split-KV flash decoding for a chunk of queries and the query
  heads of one KV head at once: rows are (query, head) pairs, keys the union of the positions
  the chunk's queries see, each row masked to its own (causal, and the window on sliding
  layers). The last split of a (KV head, chunk) to finish merges the partials, or the decode
  step's `merge_kernel` does in a launch of its own.
- `verify_finish_kernel` reduces each column's argmax blocks into the output tokens and
  records the W positions in the sliding ring's position map.

Rounding points and float32 statistics are those of `fused_kernels.py`. A weight tile is fed to
`tl.dot` in the activations' dtype: exact for bf16 weights, and for int8 codes too (|code| <=
127 fits bf16's 8-bit significand), with float32 accumulation; float32 models (the tests) use
IEEE float32 products rather than TF32.
"""

# Triton compiles a subset of Python: keep the plain if/else forms its code generator handles.
# ruff: noqa: SIM108

from __future__ import annotations

from swarmlab.engine.fast.fused_kernels import (
    GEGLU,
    HAVE_TRITON,
    PLE_GATE,
    SCALE,
    SCREEN,
    SOFTCAP_ARGMAX,
    STORE,
)

__all__ = ["GEGLU", "HAVE_TRITON", "PLE_GATE", "SCALE", "SCREEN", "SOFTCAP_ARGMAX", "STORE"]

if HAVE_TRITON:
    import triton
    import triton.language as tl

    from swarmlab.engine.fast.fused_kernels import (
        _gelu,
        _head_norm_rope,
        _pdl_release,
        _pdl_wait,
        _rnd,
        _screen_bounds,
        _softcap,
        _store_new_kv,
        _widen,
    )
    from swarmlab.engine.fast.kernels import widen_int

    _SCALE = tl.constexpr(SCALE)
    _PLE_GATE = tl.constexpr(PLE_GATE)
    _SOFTCAP_ARGMAX = tl.constexpr(SOFTCAP_ARGMAX)
    _GEGLU = tl.constexpr(GEGLU)
    _SCREEN = tl.constexpr(SCREEN)

    @triton.jit
    def _operand(w, QUANT: tl.constexpr, DT: tl.constexpr):
        """A weight tile in the activations' dtype for `tl.dot` (int8 codes exactly)."""
        if QUANT:
            return widen_int(w).to(DT)
        else:
            return w.to(DT)

    @triton.jit
    def _dot(w, x, acc, IEEE: tl.constexpr):
        if IEEE:
            return tl.dot(w, x, acc=acc, input_precision="ieee")
        else:
            return tl.dot(w, x, acc=acc)

    @triton.jit
    def _accumulate(
        w, x, acc, QUANT: tl.constexpr, DT: tl.constexpr, IEEE: tl.constexpr, DOT: tl.constexpr
    ):
        """Weight tile w [BN, BK] times activation tile x [BK, WP] into acc: with DOT one
        `tl.dot` into acc [BN, WP] (tensor cores); else float32 products into acc [BN, BK, WP],
        the mat-vec's way for several columns, summed over BK once after the loop."""
        if DOT:
            return _dot(_operand(w, QUANT, DT), x, acc, IEEE)
        else:
            return acc + _widen(w, QUANT)[:, :, None] * x.to(tl.float32)[None, :, :]

    @triton.jit
    def _columns_tile(
        x_rows,
        cols,
        K,
        col_ok,
        res_scale,
        DT: tl.constexpr,
        EMBED_INPUT: tl.constexpr,
    ):
        """Activation tile [BK, WP]: column c reads row x_rows[c] (an embedding row times
        res_scale with EMBED_INPUT), input columns `cols`."""
        mask = (cols < K)[:, None] & col_ok[None, :]
        x = tl.load(x_rows[None, :] + cols[:, None], mask=mask, other=0.0)
        if EMBED_INPUT:
            x = _rnd(x.to(tl.float32) * res_scale, DT)
        return x.to(DT)

    @triton.jit
    def _final_chunk(
        res_rows,
        y_rows,
        offs,
        ok,
        hid_ok,
        r1,
        gpost_ptr,
        scalar,
        res_scale,
        DT: tl.constexpr,
        F_FROM_TOKEN: tl.constexpr,
        F_HAS_DELTA: tl.constexpr,
        F_HAS_SCALAR: tl.constexpr,
        KEEP: tl.constexpr,
    ):
        """One chunk [WP, HC] of the new residual stream: (res + rmsnorm(y) * g) * scalar."""
        h = tl.load(res_rows + offs[None, :], mask=ok, other=0.0, cache_modifier=".cg")
        h = h.to(tl.float32)
        if F_FROM_TOKEN:
            h = _rnd(h * res_scale, DT)
        if F_HAS_DELTA:
            d = tl.load(y_rows + offs[None, :], mask=ok, other=0.0, cache_modifier=".cg")
            g = tl.load(gpost_ptr + offs, mask=hid_ok, other=0.0, eviction_policy=KEEP)
            h = _rnd(h + _rnd(d.to(tl.float32) * r1[:, None] * g.to(tl.float32)[None, :], DT), DT)
        if F_HAS_SCALAR:
            h = _rnd(h * scalar, DT)
        return h

    @triton.jit
    def _finalize_columns(
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
        W: tl.constexpr,
        WP: tl.constexpr,
        HC: tl.constexpr,
        KEEP: tl.constexpr,
    ):
        """`fused_kernels._finalize` for W columns ([W, HID] rows), in chunks of HC elements:
        one pass for the delta's norms, one writing res_out (and summing its squares), one
        recomputing it to write xin (no read-after-write across threads, so no barrier)."""
        cols = tl.arange(0, WP)
        col_ok = cols < W
        own = cols.to(tl.int64)[:, None] * HID
        if F_FROM_TOKEN:
            res_rows = res_ptr + tok[:, None] * HID
        else:
            res_rows = res_ptr + own
        chunk = tl.arange(0, HC)
        scalar = 1.0
        if F_HAS_SCALAR:
            scalar = tl.load(scalar_ptr).to(tl.float32)
        r1 = tl.zeros((WP,), dtype=tl.float32)
        if F_HAS_DELTA:
            squares = tl.zeros((WP,), dtype=tl.float32)
            for start in range(0, HID, HC):
                offs = start + chunk
                ok = col_ok[:, None] & (offs < HID)[None, :]
                d = tl.load(y_ptr + own + offs[None, :], mask=ok, other=0.0, cache_modifier=".cg")
                d = d.to(tl.float32)
                squares += tl.sum(d * d, axis=1)
            r1 = 1.0 / tl.sqrt(squares / HID + eps)
        squares2 = tl.zeros((WP,), dtype=tl.float32)
        for start in range(0, HID, HC):
            offs = start + chunk
            ok = col_ok[:, None] & (offs < HID)[None, :]
            h = _final_chunk(
                res_rows + start,
                y_ptr + own + start,
                chunk,
                ok,
                offs < HID,
                r1,
                gpost_ptr + start,
                scalar,
                res_scale,
                DT,
                F_FROM_TOKEN,
                F_HAS_DELTA,
                F_HAS_SCALAR,
                KEEP,
            )
            tl.store(res_out_ptr + own + offs[None, :], h.to(DT), mask=ok)
            squares2 += tl.sum(h * h, axis=1)
        if F_PRE_NORM:
            r2 = 1.0 / tl.sqrt(squares2 / HID + eps)
            for start in range(0, HID, HC):
                offs = start + chunk
                ok = col_ok[:, None] & (offs < HID)[None, :]
                h = _final_chunk(
                    res_rows + start,
                    y_ptr + own + start,
                    chunk,
                    ok,
                    offs < HID,
                    r1,
                    gpost_ptr + start,
                    scalar,
                    res_scale,
                    DT,
                    F_FROM_TOKEN,
                    F_HAS_DELTA,
                    F_HAS_SCALAR,
                    KEEP,
                )
                g2 = tl.load(gpre_ptr + offs, mask=offs < HID, other=0.0, eviction_policy=KEEP)
                xin = _rnd(h * r2[:, None] * g2.to(tl.float32)[None, :], DT)
                tl.store(xin_ptr + own + offs[None, :], xin.to(DT), mask=ok)

    @triton.jit
    def _ple_gate_columns(
        y,
        rows,
        row_ok,
        cols,
        col_ok,
        NR,
        tok,
        ple_ptr,
        ple_row,
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
        """`fused_kernels._ple_gate` per column: column c's per-layer input comes from its row
        of the projected per-layer inputs (row stride ple_row) and its own token's table row."""
        chunk = tl.arange(0, AUX_BLOCK)
        ple_rows = ple_ptr + cols.to(tl.int64)[None, :] * ple_row + offset
        chunk_mask = (chunk < NR)[:, None] & col_ok[None, :]
        projected = tl.load(ple_rows + chunk[:, None], mask=chunk_mask, other=0.0)
        projected = projected.to(tl.float32)
        r3 = 1.0 / tl.sqrt(tl.sum(projected * projected, axis=0) / NR + eps)
        mask = row_ok[:, None] & col_ok[None, :]
        mine = tl.load(ple_rows + rows[:, None], mask=mask, other=0.0).to(tl.float32)
        norm_w = tl.load(norm_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
        looked = tl.load(table_ptr + tok[None, :] * stride + offset + rows[:, None], mask=mask)
        looked = _rnd(looked.to(tl.float32) * table_scale, DT)
        normed = _rnd(mine * r3[None, :] * norm_w[:, None], DT)
        per_layer = _rnd(_rnd(normed + looked, DT) * out_scale, DT)
        return _rnd(_rnd(_gelu(y), DT) * per_layer, DT)

    @triton.jit
    def _dequantized(
        acc, acc2, scale_ptr, rows, row_ok, NR, EPI: tl.constexpr, QUANT: tl.constexpr
    ):
        """The float32 sums [BN, WP] of a program (and up's with GEGLU), times the int8 weights'
        per-row scales with QUANT; unrounded."""
        y = acc
        up = acc2
        if QUANT:
            y = y * tl.load(scale_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)[:, None]
            if EPI == _GEGLU:
                up_scale = tl.load(scale_ptr + rows + NR, mask=row_ok, other=0.0)
                up = up * up_scale.to(tl.float32)[:, None]
        return y, up

    @triton.jit
    def _store_partials(
        y,
        up,
        part_ptr,
        rows,
        row_ok,
        wcols,
        wcol_ok,
        NR,
        W: tl.constexpr,
        EPI: tl.constexpr,
    ):
        """A split mat-mat program's float32 sums [BN, WP] (and up's with GEGLU) at
        part_ptr[split, column, row] of a [SPLIT, W, NR (2 NR with GEGLU)] buffer."""
        out_rows = NR
        if EPI == _GEGLU:
            out_rows = 2 * NR
        plane = part_ptr + tl.program_id(1).to(tl.int64) * W * out_rows
        at = plane + wcols.to(tl.int64)[None, :] * out_rows + rows[:, None]
        mask = row_ok[:, None] & wcol_ok[None, :]
        tl.store(at, y, mask=mask)
        if EPI == _GEGLU:
            tl.store(at + NR, up, mask=mask)

    @triton.jit
    def geglu_reduce_kernel(
        part_ptr,
        y_ptr,
        NR,
        W: tl.constexpr,
        SPLIT: tl.constexpr,
        BLOCK: tl.constexpr,
        USE_PDL: tl.constexpr,
    ):
        """gelu(gate) * up of a split gate+up mat-mat: rows [program_id(0) * BLOCK, ...) of
        column program_id(1), each the sum of its SPLIT float32 partials, rounded where the
        unsplit mat-mat's epilogue rounds."""
        DT: tl.constexpr = y_ptr.dtype.element_ty
        pid = tl.program_id(0)
        column = tl.program_id(1)
        _pdl_release(USE_PDL)
        _pdl_wait(USE_PDL)
        rows = pid * BLOCK + tl.arange(0, BLOCK)
        ok = rows < NR
        src = part_ptr + column.to(tl.int64) * 2 * NR + rows
        gate = tl.zeros((BLOCK,), dtype=tl.float32)
        up = tl.zeros((BLOCK,), dtype=tl.float32)
        for part in tl.static_range(SPLIT):
            plane = src + part * W * 2 * NR
            gate += tl.load(plane, mask=ok, other=0.0, cache_modifier=".cg")
            up += tl.load(plane + NR, mask=ok, other=0.0, cache_modifier=".cg")
        y = _rnd(_rnd(_gelu(_rnd(gate, DT)), DT) * _rnd(up, DT), DT)
        tl.store(y_ptr + column.to(tl.int64) * NR + rows, y.to(DT), mask=ok)

    @triton.jit
    def matmat_kernel(
        w_ptr,
        y_ptr,
        NR,
        K,
        x_ptr,
        ids_ptr,
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
        part_ptr,
        HID,
        res_scale,
        out_scale,
        aux_scale,
        eps,
        aux_offset,
        aux_stride,
        aux_row,
        W: tl.constexpr,
        WP: tl.constexpr,
        EMBED_INPUT: tl.constexpr,
        EPI: tl.constexpr,
        FINAL: tl.constexpr,
        F_FROM_TOKEN: tl.constexpr,
        F_HAS_DELTA: tl.constexpr,
        F_HAS_SCALAR: tl.constexpr,
        F_PRE_NORM: tl.constexpr,
        AUX_BLOCK: tl.constexpr,
        HC: tl.constexpr,
        BN: tl.constexpr,
        BK: tl.constexpr,
        EVEN_K: tl.constexpr,
        USE_PDL: tl.constexpr,
        QUANT: tl.constexpr,
        IEEE: tl.constexpr,
        DOT: tl.constexpr,
        STREAM: tl.constexpr,
        KEEP: tl.constexpr,
        SPLIT: tl.constexpr,
    ):
        """Y[W, NR] = X[W, K] @ W[NR (x2 for GEGLU), K]^T, then an epilogue per column; with
        FINAL the last program to finish rebuilds the residual stream of every column.

        With SPLIT > 1 (STORE or GEGLU, no FINAL, K a multiple of SPLIT * BK) program (i, s)
        sums columns [s * K / SPLIT, (s + 1) * K / SPLIT) only and stores its float32 partial
        (times the int8 scale) unrounded at part_ptr[s, column, row] (rows 0..2NR for GEGLU:
        gate, then up); the consumer adds the SPLIT partials and rounds (`_finalize`,
        `geglu_reduce_kernel`).

        Arguments are `fused_kernels.matvec_kernel`'s, with activations, outputs, residual
        streams and normed inputs as W rows of their decode-step length, ids_ptr holding the W
        tokens (the token of column c is ids[c]) and aux_row the row stride of PLE_GATE's
        projected per-layer inputs. SOFTCAP_ARGMAX writes column c's block maxima and indices
        at aux[c * programs + program] and aux2[...]. DOT multiplies each weight tile by the
        columns with `tl.dot` (WP >= 16, BN >= 16, BK >= 16); without it, float32 products are
        accumulated per column as the mat-vec does (any power-of-two WP, BN and BK).
        """
        DT: tl.constexpr = y_ptr.dtype.element_ty
        pid = tl.program_id(0)
        _pdl_release(USE_PDL)
        rows = pid * BN + tl.arange(0, BN)
        row_ok = rows < NR
        row_base = rows.to(tl.int64)[:, None] * K
        up_base = (rows + NR).to(tl.int64)[:, None] * K
        k_start = 0
        k_end = K
        if SPLIT > 1:
            k_start = tl.program_id(1) * (K // SPLIT)
            k_end = k_start + K // SPLIT
        # Every weight tile is loaded inside the loop, after the PDL wait: loading the first
        # one before the wait (as the decode step's mat-vec does) takes it out of the loop's
        # shared-memory pipeline, and a bare mat-mat of gate+up's bytes then streams at 2.9
        # against 3.8 TB/s on an H200 (benchmarks/engine_matmat.py --variants).
        _pdl_wait(USE_PDL)

        wcols = tl.arange(0, WP)
        wcol_ok = wcols < W
        tok = wcols.to(tl.int64) * 0
        if EMBED_INPUT or F_FROM_TOKEN or EPI == _PLE_GATE:
            tok = tl.load(ids_ptr + wcols, mask=wcol_ok, other=0).to(tl.int64)
        if EMBED_INPUT:
            x_rows = x_ptr + tok * K
        else:
            x_rows = x_ptr + wcols.to(tl.int64) * K
        if DOT:
            acc = tl.zeros((BN, WP), dtype=tl.float32)
        else:
            acc = tl.zeros((BN, BK, WP), dtype=tl.float32)
        acc2 = acc
        xsq = tl.zeros((WP,), dtype=tl.float32)
        for start in range(k_start, k_end, BK):
            cols = start + tl.arange(0, BK)
            x = _columns_tile(x_rows, cols, K, wcol_ok, res_scale, DT, EMBED_INPUT)
            if EPI == _SCREEN:
                xsq += tl.sum(x.to(tl.float32) * x.to(tl.float32), axis=0)
            if EVEN_K:
                mask = row_ok[:, None]
            else:
                mask = row_ok[:, None] & (cols < K)[None, :]
            w = tl.load(
                w_ptr + row_base + cols[None, :], mask=mask, other=0.0, eviction_policy=STREAM
            )
            acc = _accumulate(w, x, acc, QUANT, DT, IEEE, DOT)
            if EPI == _GEGLU:
                w2 = tl.load(
                    w_ptr + up_base + cols[None, :], mask=mask, other=0.0, eviction_policy=STREAM
                )
                acc2 = _accumulate(w2, x, acc2, QUANT, DT, IEEE, DOT)

        if not DOT:
            acc = tl.sum(acc, axis=1)
            if EPI == _GEGLU:
                acc2 = tl.sum(acc2, axis=1)
        y, up = _dequantized(acc, acc2, scale_ptr, rows, row_ok, NR, EPI, QUANT)
        if SPLIT > 1:
            _store_partials(y, up, part_ptr, rows, row_ok, wcols, wcol_ok, NR, W, EPI)
        else:
            if EPI != _SCREEN:
                y = _rnd(y, DT)
            if EPI == _SCALE:
                y = _rnd(y * out_scale, DT)
            elif EPI == _GEGLU:
                y = _rnd(_rnd(_gelu(y), DT) * _rnd(up, DT), DT)
            elif EPI == _PLE_GATE:
                y = _ple_gate_columns(
                    y,
                    rows,
                    row_ok,
                    wcols,
                    wcol_ok,
                    NR,
                    tok,
                    aux_ptr,
                    aux_row,
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
                y = tl.where(row_ok[:, None], _softcap(y, out_scale, DT), float("-inf"))
                best = tl.max(y, axis=0)
                first = tl.min(tl.where(y == best[None, :], rows[:, None], 2147483647), axis=0)
                at = wcols * tl.num_programs(0) + pid
                tl.store(aux_ptr + at, best, mask=wcol_ok)
                tl.store(aux2_ptr + at, first, mask=wcol_ok)
            elif EPI == _SCREEN:
                # fused_kernels' SCREEN for each column: upper bounds at aux[c * NR + row],
                # the column's floor at aux2[c] (aux3: the rows' radii).
                radius = tl.load(aux3_ptr + rows, mask=row_ok, other=0.0)
                reach = radius[:, None] * tl.sqrt(xsq)[None, :]
                upper, lower = _screen_bounds(y, reach, row_ok[:, None], out_scale, DT)
                out = aux_ptr + wcols.to(tl.int64)[None, :] * NR + rows[:, None]
                tl.store(out, upper, mask=row_ok[:, None] & wcol_ok[None, :])
                tl.atomic_max(aux2_ptr + wcols, tl.max(lower, axis=0), mask=wcol_ok)
            if EPI != _SOFTCAP_ARGMAX and EPI != _SCREEN:
                out = y_ptr + wcols.to(tl.int64)[None, :] * NR + rows[:, None]
                tl.store(out, y.to(DT), mask=row_ok[:, None] & wcol_ok[None, :])

            if FINAL:
                arrived = tl.atomic_add(counter_ptr, 1, sem="acq_rel")
                if arrived == tl.num_programs(0) - 1:
                    _finalize_columns(
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
                        W,
                        WP,
                        HC,
                        KEEP,
                    )
                    # Reset for the next step (kernel completion publishes it).
                    tl.store(counter_ptr, 0)

    @triton.jit
    def verify_prep_kernel(
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
        qkv_row,
        HEADS: tl.constexpr,
        KV_HEADS: tl.constexpr,
        D: tl.constexpr,
        K_EQ_V: tl.constexpr,
        USE_PDL: tl.constexpr,
    ):
        """`fused_kernels.qk_prep_kernel` for column program_id(1): its qkv row (stride
        qkv_row), its position, its row of q_out ([W, HEADS * D])."""
        DT: tl.constexpr = q_out_ptr.dtype.element_ty
        pid = tl.program_id(0)
        column = tl.program_id(1)
        _pdl_release(USE_PDL)
        _pdl_wait(USE_PDL)
        pos = tl.load(pos_ptr + column).to(tl.int64)
        half = tl.arange(0, D // 2)
        cos1 = tl.load(cos_ptr + pos * D + half).to(tl.float32)
        cos2 = tl.load(cos_ptr + pos * D + D // 2 + half).to(tl.float32)
        sin1 = tl.load(sin_ptr + pos * D + half).to(tl.float32)
        sin2 = tl.load(sin_ptr + pos * D + D // 2 + half).to(tl.float32)
        qkv = qkv_ptr + column.to(tl.int64) * qkv_row
        if pid < HEADS:
            o1, o2 = _head_norm_rope(
                qkv + pid * D, qnorm_ptr, cos1, cos2, sin1, sin2, eps, DT, D, True, True
            )
            q_row = q_out_ptr + column.to(tl.int64) * (HEADS * D) + pid * D
            tl.store(q_row + half, o1.to(DT))
            tl.store(q_row + D // 2 + half, o2.to(DT))
        else:
            _store_new_kv(
                qkv,
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
    def _attend_masked(q, k, v, visible, m, total, acc, DT: tl.constexpr, IEEE: tl.constexpr):
        """`fused_kernels._attend_block` with a mask per (row, key): a row may see none of a
        block's keys, so a state still at -inf is shifted by 0 instead (no inf - inf)."""
        if IEEE:
            scores = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            scores = tl.dot(q, tl.trans(k))
        scores = tl.where(visible, _rnd(scores, DT), float("-inf"))
        new_m = tl.maximum(m, tl.max(scores, axis=1))
        shift = tl.where(new_m == float("-inf"), 0.0, new_m)
        alpha = tl.exp(m - shift)
        weights = tl.exp(scores - shift[:, None])
        total = total * alpha + tl.sum(weights, axis=1)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(weights, v.to(tl.float32), input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(weights.to(DT), v)
        return new_m, total, acc

    @triton.jit
    def verify_attention_kernel(
        q_ptr,
        k_cache_ptr,
        v_cache_ptr,
        out_ptr,
        m_ptr,
        l_ptr,
        acc_ptr,
        counter_ptr,
        pos_ptr,
        slots,
        window,
        W: tl.constexpr,
        QB: tl.constexpr,
        GROUP: tl.constexpr,
        RB: tl.constexpr,
        D: tl.constexpr,
        BS: tl.constexpr,
        SPLITS: tl.constexpr,
        SLIDING: tl.constexpr,
        HEADS: tl.constexpr,
        IEEE: tl.constexpr,
        MERGE_LAUNCH: tl.constexpr,
        USE_PDL: tl.constexpr,
    ):
        """Queries chunk * QB .. (at most W) against the cache, for the GROUP query heads of KV
        head program_id(0); program_id(1) takes one of SPLITS equal runs of the positions any
        of the chunk's queries sees; program_id(2) is the chunk.

        Row r of the tile is query chunk * QB + r // GROUP, head r % GROUP of the KV head (RB
        rows, a power of two >= 16). Query i at position p_i sees keys at positions <= p_i
        (and > p_i - window on sliding layers), slot p % slots; the prep launch has written
        this step's keys. Partials are kept per (query, head, split), at (query * HEADS +
        head) * SPLITS + split; the last split of a (KV head, chunk) to finish merges them, or
        with MERGE_LAUNCH the decode step's `merge_kernel` does, a launch of its own with one
        program a (query, head) (SPLITS == 1: written directly).
        """
        DT: tl.constexpr = out_ptr.dtype.element_ty
        kvh = tl.program_id(0)
        split = tl.program_id(1)
        chunk = tl.program_id(2)
        _pdl_release(USE_PDL)
        r = tl.arange(0, RB)
        query = chunk * QB + r // GROUP
        row_ok = (r < QB * GROUP) & (query < W)
        head = kvh * GROUP + r % GROUP
        dims = tl.arange(0, D)
        _pdl_wait(USE_PDL)
        q_rows = query.to(tl.int64) * (HEADS * D) + head * D
        q = tl.load(q_ptr + q_rows[:, None] + dims[None, :], mask=row_ok[:, None], other=0.0)
        seen = tl.load(pos_ptr + query, mask=row_ok, other=0).to(tl.int64)
        first_query = chunk * QB
        last_query = tl.minimum(first_query + QB, W) - 1
        newest = tl.load(pos_ptr + last_query).to(tl.int64)
        if SLIDING:
            low = tl.maximum(tl.load(pos_ptr + first_query).to(tl.int64) - window + 1, 0)
        else:
            low = newest * 0
        per = (newest - low + SPLITS) // SPLITS
        begin = low + split * per
        end = tl.minimum(begin + per, newest + 1)
        cache_base = kvh.to(tl.int64) * slots * D
        keys = tl.arange(0, BS)
        m = tl.full((RB,), float("-inf"), dtype=tl.float32)
        total = tl.zeros((RB,), dtype=tl.float32)
        acc = tl.zeros((RB, D), dtype=tl.float32)
        for first in range(begin, end, BS):
            p = first + keys
            ok = p < end
            slot = cache_base + (p % slots) * D
            k = tl.load(k_cache_ptr + slot[:, None] + dims[None, :], mask=ok[:, None], other=0.0)
            v = tl.load(v_cache_ptr + slot[:, None] + dims[None, :], mask=ok[:, None], other=0.0)
            visible = ok[None, :] & (p[None, :] <= seen[:, None])
            if SLIDING:
                visible = visible & (p[None, :] > seen[:, None] - window)
            m, total, acc = _attend_masked(q, k, v, visible, m, total, acc, DT, IEEE)

        out_rows = q_rows[:, None] + dims[None, :]
        if SPLITS == 1:
            merged = acc / tl.where(total > 0, total, 1.0)[:, None]
            tl.store(out_ptr + out_rows, merged.to(DT), mask=row_ok[:, None])
        else:
            part = (query * HEADS + head) * SPLITS
            tl.store(m_ptr + part + split, m, mask=row_ok)
            tl.store(l_ptr + part + split, total, mask=row_ok)
            partial = acc_ptr + (part + split).to(tl.int64)[:, None] * D + dims[None, :]
            tl.store(partial, acc, mask=row_ok[:, None])
            if not MERGE_LAUNCH:
                counter = counter_ptr + kvh * tl.num_programs(2) + chunk
                arrived = tl.atomic_add(counter, 1, sem="acq_rel")
                if arrived == SPLITS - 1:
                    splits = tl.arange(0, SPLITS)
                    parts = part[:, None] + splits[None, :]
                    ms = tl.load(
                        m_ptr + parts, mask=row_ok[:, None], other=0.0, cache_modifier=".cg"
                    )
                    ls = tl.load(
                        l_ptr + parts, mask=row_ok[:, None], other=1.0, cache_modifier=".cg"
                    )
                    scale = tl.exp(ms - tl.max(ms, axis=1)[:, None])
                    merged = tl.zeros((RB, D), dtype=tl.float32)
                    for s in tl.static_range(SPLITS):
                        weight = tl.sum(tl.where(splits[None, :] == s, scale, 0.0), axis=1)
                        values = tl.load(
                            acc_ptr + (part + s).to(tl.int64)[:, None] * D + dims[None, :],
                            mask=row_ok[:, None],
                            other=0.0,
                            cache_modifier=".cg",
                        )
                        merged += values * weight[:, None]
                    merged = merged / tl.sum(scale * ls, axis=1)[:, None]
                    tl.store(out_ptr + out_rows, merged.to(DT), mask=row_ok[:, None])
                    # Every split has arrived; kernel completion publishes the reset.
                    tl.store(counter, 0)

    @triton.jit
    def verify_finish_kernel(
        best_ptr,
        index_ptr,
        blocks,
        out_ptr,
        pos_ptr,
        slot_positions_ptr,
        ring,
        floor_ptr,
        BLOCK: tl.constexpr,
        USE_PDL: tl.constexpr,
        RESET_FLOOR: tl.constexpr,
    ):
        """Column program_id(0): the argmax over its vocabulary blocks (first index on ties, as
        torch.argmax) into out; its position into the sliding ring's position map. With
        RESET_FLOOR its screened lm_head's floor (floor_ptr[column]) back to -inf."""
        column = tl.program_id(0)
        _pdl_release(USE_PDL)
        _pdl_wait(USE_PDL)
        offs = tl.arange(0, BLOCK)
        base = column * blocks
        best = float("-inf")
        chosen = 0
        for start in range(0, blocks, BLOCK):
            ok = start + offs < blocks
            values = tl.load(best_ptr + base + start + offs, mask=ok, other=float("-inf"))
            indices = tl.load(index_ptr + base + start + offs, mask=ok, other=2147483647)
            top = tl.max(values, axis=0)
            first = tl.min(tl.where(values == top, indices, 2147483647), axis=0)
            if top > best:
                best = top
                chosen = first
        pos = tl.load(pos_ptr + column)
        tl.store(out_ptr + column, chosen.to(tl.int64))
        tl.store(slot_positions_ptr + pos % ring, pos)
        if RESET_FLOOR:
            tl.store(floor_ptr + column, float("-inf"))
