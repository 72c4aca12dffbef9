"""Triton mat-vec kernels for batch-1 decoding (CUDA only; import needs triton).

A decode step multiplies one activation row by every weight matrix once, so it is bound by
how fast the weights stream from HBM. cuBLAS reaches only 40-80% of copy bandwidth on the
mid-size and small matrices of Gemma-4 E4B (docs/engine-performance.md), partly because
its batch-1 kernels keep too few bytes in flight. This kernel gives each program a few full
rows, streams them in wide tiles with a deep software pipeline, and accumulates in float32.
The same kernel reads int8 weights with one scale per output row (weight-only int8).

The kernels are exposed as a torch custom op so that torch.compile treats them as opaque
calls and CUDA graphs capture them like any other launch.
"""

from __future__ import annotations

import importlib.util

import torch

# CPU-only installs have no triton: the module still imports (the ops register and raise).
HAVE_TRITON = importlib.util.find_spec("triton") is not None
if HAVE_TRITON:
    import triton
    import triton.language as tl

    _CONFIGS = [
        triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
        for n, k, w, s in [
            (2, 2048, 8, 3),
            (2, 1024, 4, 4),
            (4, 512, 4, 4),
            (4, 1024, 8, 3),
            (8, 256, 4, 4),
            (8, 512, 8, 3),
            (16, 256, 8, 3),
            (16, 128, 4, 4),
        ]
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
            acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
        y = tl.sum(acc, axis=1)
        if SCALED:
            y = y * tl.load(scale_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
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
