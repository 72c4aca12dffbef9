"""Triton mat-vec kernels for batch-1 decoding (CUDA only; import needs triton).

A decode step multiplies one activation row by every weight matrix once, so it is bound by
how fast the weights stream from HBM. cuBLAS reaches only 40-80% of copy bandwidth on the
mid-size and small matrices of Gemma-4 E4B (docs/engine-performance.md), partly because
its batch-1 kernels keep too few bytes in flight. This kernel gives each program a few full
rows, streams them in wide tiles with a deep software pipeline, and accumulates in float32.
The same kernel reads int8 weights with one scale per output row (weight-only int8). A
second kernel reads int4 weights packed two per byte with a scale and an offset per group of
input columns, unpacking and dequantizing in registers (weight-only int4).

The kernels are exposed as a torch custom op so that torch.compile treats them as opaque
calls and CUDA graphs capture them like any other launch.
"""

from __future__ import annotations

import importlib.util
import os

import torch

# CPU-only installs have no triton: the module still imports (the ops register and raise).
HAVE_TRITON = importlib.util.find_spec("triton") is not None

# Mat-vec tiles worth trying on a Hopper GPU: (rows a program, columns a tile, warps,
# pipeline stages). The autotuner below tries them all; the fused step's tuners try those
# that fit a shape (`fused.candidate_configs`).
MATVEC_TILES: tuple[tuple[int, int, int, int], ...] = (
    (2, 2048, 8, 3),
    (2, 1024, 4, 4),
    (4, 512, 4, 4),
    (4, 1024, 8, 3),
    (8, 256, 4, 4),
    (8, 512, 8, 3),
    (16, 256, 8, 3),
    (16, 128, 4, 4),
)
if HAVE_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def widen_int(v):  # type: ignore[no-untyped-def]
        """Small integer codes (|v| < 2^22) as float32, through the float bit pattern of
        1.5 * 2^23 (whose low mantissa bits then hold the code) and one subtraction: an integer
        add and a float add, both at full rate, where a conversion instruction runs at a
        quarter of it and bounded the quantized mat-vecs. Exact."""
        return (v.to(tl.int32) + 0x4B400000).to(tl.float32, bitcast=True) - 12582912.0

    _CONFIGS = [
        triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
        for n, k, w, s in MATVEC_TILES
    ]

    @triton.autotune(configs=_CONFIGS, key=["N", "K", "SCALED"])  # type: ignore[untyped-decorator]
    @triton.heuristics({"EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0})  # type: ignore[untyped-decorator]
    @triton.jit  # type: ignore[untyped-decorator]
    def _gemv_kernel(  # type: ignore[no-untyped-def]
        w_ptr,
        x_ptr,
        scale_ptr,
        y_ptr,
        N,
        K,
        SCALED: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        EVEN_K: tl.constexpr,
    ):
        rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < N
        cols = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        row_offsets = rows.to(tl.int64)[:, None] * K
        for start in range(0, K, BLOCK_K):
            offsets = start + cols
            if EVEN_K:
                w = tl.load(w_ptr + row_offsets + offsets[None, :], mask=row_ok[:, None], other=0.0)
                x = tl.load(x_ptr + offsets)
            else:
                col_ok = offsets < K
                w = tl.load(
                    w_ptr + row_offsets + offsets[None, :],
                    mask=row_ok[:, None] & col_ok[None, :],
                    other=0.0,
                )
                x = tl.load(x_ptr + offsets, mask=col_ok, other=0.0)
            if SCALED:
                acc += widen_int(w) * x.to(tl.float32)[None, :]
            else:
                acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
        y = tl.sum(acc, axis=1)
        if SCALED:
            y = y * tl.load(scale_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
        tl.store(y_ptr + rows, y.to(y_ptr.dtype.element_ty), mask=row_ok)

    # BLOCK_K counts weights (columns): a tile row is BLOCK_K / 2 bytes. FACTORED picks how a
    # group is dequantized (see the kernel); the autotuner keeps whichever is faster.
    _INT4_CONFIGS = [
        triton.Config({"BLOCK_N": n, "BLOCK_K": k, "FACTORED": f}, num_warps=w, num_stages=s)
        for n, k, w, s in [
            (2, 4096, 8, 3),
            (4, 2048, 4, 4),
            (4, 4096, 8, 3),
            (8, 1024, 4, 4),
            (8, 2048, 8, 3),
            (16, 1024, 8, 3),
        ]
        for f in (False, True)
    ]
    # The interpreter (CPU tests) cannot time configs: one small one; tests override it.
    if os.environ.get("TRITON_INTERPRET") == "1":
        _INT4_CONFIGS = [triton.Config({"BLOCK_N": 4, "BLOCK_K": 256, "FACTORED": False})]

    @triton.autotune(configs=_INT4_CONFIGS, key=["N", "GROUPS", "GROUP"])  # type: ignore[untyped-decorator]
    @triton.heuristics(  # type: ignore[untyped-decorator]
        {
            "TILE_GROUPS": lambda args: max(args["BLOCK_K"] // args["GROUP"], 1),
            "EVEN_K": lambda args: args["GROUPS"] % max(args["BLOCK_K"] // args["GROUP"], 1) == 0,
        }
    )
    @triton.jit  # type: ignore[untyped-decorator]
    def _gemv_int4_kernel(  # type: ignore[no-untyped-def]
        w_ptr,
        x_ptr,
        scale_ptr,
        zero_ptr,
        y_ptr,
        N,
        GROUPS: tl.constexpr,
        GROUP: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        FACTORED: tl.constexpr,
        TILE_GROUPS: tl.constexpr,
        EVEN_K: tl.constexpr,
    ):
        # A tile is [BLOCK_N rows, TILE_GROUPS groups, GROUP / 2 bytes]; scale and offset are
        # loaded once per (row, group). Plain: dequantize every weight (code * scale + offset)
        # and accumulate weight * x. FACTORED: accumulate code * x per group, then apply
        # scale * sum + offset * sum(x): half the arithmetic per weight, one reduction a tile.
        HALF: tl.constexpr = GROUP // 2
        rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < N
        tile_groups = tl.arange(0, TILE_GROUPS)
        lanes = tl.arange(0, HALF)
        acc = tl.zeros((BLOCK_N, TILE_GROUPS, HALF), dtype=tl.float32)
        acc_groups = tl.zeros((BLOCK_N, TILE_GROUPS), dtype=tl.float32)
        byte_rows = rows.to(tl.int64)[:, None, None] * (GROUPS * HALF)
        group_rows = rows.to(tl.int64)[:, None] * GROUPS
        for first in range(0, GROUPS, TILE_GROUPS):
            group = first + tile_groups
            byte_cols = group[:, None] * HALF + lanes[None, :]
            group_ok = group < GROUPS
            x_mask = group_ok[:, None]  # x is a few KiB and cached: its mask costs nothing
            if EVEN_K:
                w_mask = row_ok[:, None, None]
                g_mask = row_ok[:, None]
            else:
                w_mask = row_ok[:, None, None] & group_ok[None, :, None]
                g_mask = row_ok[:, None] & group_ok[None, :]
            packed = tl.load(w_ptr + byte_rows + byte_cols[None, :, :], mask=w_mask, other=0)
            scale = tl.load(scale_ptr + group_rows + group[None, :], mask=g_mask, other=0.0)
            zero = tl.load(zero_ptr + group_rows + group[None, :], mask=g_mask, other=0.0)
            x_even = tl.load(x_ptr + 2 * byte_cols, mask=x_mask, other=0.0).to(tl.float32)
            x_odd = tl.load(x_ptr + 2 * byte_cols + 1, mask=x_mask, other=0.0).to(tl.float32)
            low = widen_int(packed & 15)
            high = widen_int(packed >> 4)
            scale = scale.to(tl.float32)
            zero = zero.to(tl.float32)
            if FACTORED:
                codes_x = tl.sum(low * x_even[None, :, :] + high * x_odd[None, :, :], axis=2)
                x_sum = tl.sum(x_even + x_odd, axis=1)
                acc_groups += codes_x * scale + zero * x_sum[None, :]
            else:
                low = low * scale[:, :, None] + zero[:, :, None]
                high = high * scale[:, :, None] + zero[:, :, None]
                acc += low * x_even[None, :, :] + high * x_odd[None, :, :]
        if FACTORED:  # noqa: SIM108  (Triton resolves constexpr branches at compile time)
            y = tl.sum(acc_groups, axis=1)
        else:
            y = tl.sum(tl.sum(acc, axis=2), axis=1)
        tl.store(y_ptr + rows, y.to(y_ptr.dtype.element_ty), mask=row_ok)


def _launch(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    if not HAVE_TRITON:
        raise RuntimeError("the Triton mat-vec needs triton and CUDA: use the torch kernels")
    n, k = weight.shape
    out = torch.empty((1, n), dtype=x.dtype, device=x.device)
    scaled = scale is not None

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    _gemv_kernel[grid](weight, x, scale if scaled else weight, out, n, k, SCALED=scaled)
    return out


@torch.library.custom_op("swarmlab::gemv", mutates_args=())
def gemv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [1, K] @ weight[N, K].T -> [1, N], float32 accumulation."""
    return _launch(x.contiguous(), weight, None)


@gemv.register_fake
def _(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x.new_empty((1, weight.shape[0]))


@torch.library.custom_op("swarmlab::gemv_int8", mutates_args=())
def gemv_int8(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [1, K] @ (int8 weight[N, K] * scale[N, None]).T -> [1, N]."""
    return _launch(x.contiguous(), weight, scale)


@gemv_int8.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x.new_empty((1, weight.shape[0]))


@torch.library.custom_op("swarmlab::gemv_int4", mutates_args=())
def gemv_int4(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor
) -> torch.Tensor:
    """x [1, K] @ dequantized int4 weight.T -> [1, N]; `weight` [N, K/2] packs columns 2j
    (low nibble) and 2j+1 (high); column k's group is k // (K / G) of scale, zero [N, G]."""
    return _launch_int4(x.contiguous(), weight, scale, zero)


@gemv_int4.register_fake
def _(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor
) -> torch.Tensor:
    return x.new_empty((1, weight.shape[0]))


def _launch_int4(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor
) -> torch.Tensor:
    if not HAVE_TRITON:
        raise RuntimeError("the Triton int4 mat-vec needs triton and CUDA: use the torch kernels")
    n, k = weight.shape[0], 2 * weight.shape[1]
    groups = scale.shape[1]
    out = torch.empty((1, n), dtype=x.dtype, device=x.device)

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    _gemv_int4_kernel[grid](weight, x, scale, zero, out, n, GROUPS=groups, GROUP=k // groups)
    return out
