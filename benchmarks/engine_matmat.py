"""How fast a bare Triton mat-mat of the verify step's shape streams its weights (one GPU).

The fused verify step's mat-mats (`fast/fused_verify_kernels.matmat_kernel`) multiply each
weight tile by W <= 16 activation columns with `tl.dot` and stream at ~1.5-2.6 TB/s on an
H200 for the layer shapes, against ~3.9 TB/s for the decode step's mat-vec on the same
weights and ~4.4 TB/s for the mat-mat itself on the 262,144-row lm_head. This script asks
whether that is the kernel's epilogues and flags or the way a bare `tl.dot` kernel loads its
weights: for a few E4B shapes (42 distinct weights each, more than L2 holds, as in a step) it
times CUDA graphs of a bare mat-mat `Y[W, N] = X[W, K] @ Wt[N, K]^T` over a grid of tiles,
warps, stages and column splits, with the weight tile read by pointer loads or by a Hopper
tensor descriptor (TMA), and prints TB/s next to cuBLAS (`torch.matmul`). Outputs of split programs are stored per split, not summed: only the
streaming rate is of interest. Usage: python benchmarks/engine_matmat.py [--width 5]
[--shapes 20480x2560,2560x10240] [--quick] [--out matmat.json]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import triton
import triton.language as tl

from swarmlab.engine.fast.graphs import graph_ms

LAYERS = 42


@triton.jit
def _weight_tile(
    w, rows, start, K, BN: tl.constexpr, BK: tl.constexpr, HINT: tl.constexpr, TMA: tl.constexpr
):
    """The weight tile [BN, BK] of `rows` from column `start`: by pointer, or through the
    tensor descriptor `w` with TMA."""
    if TMA:
        tile = w.load([tl.program_id(0) * BN, start])
    else:
        cols = start + tl.arange(0, BK)
        tile = tl.load(w + rows.to(tl.int64)[:, None] * K + cols[None, :], eviction_policy=HINT)
    return tile


@triton.jit
def _columns(x_ptr, start, K, W: tl.constexpr, WP: tl.constexpr, BK: tl.constexpr):
    """Activation tile [BK, WP]: the W columns, zero past them."""
    cols = start + tl.arange(0, BK)
    wcols = tl.arange(0, WP)
    mask = (cols < K)[:, None] & (wcols < W)[None, :]
    return tl.load(x_ptr + wcols[None, :] * K + cols[:, None], mask=mask, other=0.0)


@triton.jit
def bare_matmat(
    w,
    x_ptr,
    y_ptr,
    N,
    K,
    W: tl.constexpr,
    WP: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    SPLIT: tl.constexpr,
    HINT: tl.constexpr = "",
    PEEL: tl.constexpr = False,
    TMA: tl.constexpr = False,
):
    """Y[s, W, N] (s = the column split) = X[W, Ks] @ Wt[N, Ks]^T. The weights `w` are a
    pointer, or with TMA a host tensor descriptor of [BN, BK] blocks; HINT is the pointer
    loads' eviction policy; PEEL multiplies the first tile before the loop (as
    `matmat_kernel` did when it loaded that tile before its PDL wait)."""
    part = tl.program_id(1)
    rows = tl.program_id(0) * BN + tl.arange(0, BN)
    wcols = tl.arange(0, WP)
    span = K // SPLIT
    acc = tl.zeros((BN, WP), dtype=tl.float32)
    first = part * span
    if PEEL:
        tile = _weight_tile(w, rows, first, K, BN, BK, HINT, TMA)
        acc += tl.dot(tile, _columns(x_ptr, first, K, W, WP, BK))
        first += BK
    for start in range(first, part * span + span, BK):
        tile = _weight_tile(w, rows, start, K, BN, BK, HINT, TMA)
        acc += tl.dot(tile, _columns(x_ptr, start, K, W, WP, BK))
    out = y_ptr + part * W * N + wcols[None, :] * N + rows[:, None]
    tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=(rows < N)[:, None] & (wcols < W)[None, :])


def tiles(quick: bool) -> list[tuple[int, int, int, int, int]]:
    """(BN, BK, warps, stages, split) candidates."""
    if quick:
        return [(32, 256, 4, 3, 1), (64, 128, 8, 3, 1), (16, 256, 4, 4, 1), (32, 256, 4, 3, 2)]
    grid = itertools.product((16, 32, 64, 128), (128, 256), (2, 4, 8), (3, 5), (1, 2, 4))
    return [tile for tile in grid if not (tile[0] >= 64 and tile[2] == 2)]


def sweep(
    shape: tuple[int, int], width: int, quick: bool, steps: int, device: torch.device
) -> list[dict[str, Any]]:
    from triton.tools.tensor_descriptor import TensorDescriptor

    n, k = shape
    # 42 distinct weights as in a step, fewer for the lm_head (at least two: more than L2).
    count = max(2, min(LAYERS, 2_500_000_000 // (n * k * 2)))
    # bf16 on the GPU; float32 under the interpreter, whose tl.dot multiplies bf16 bit patterns.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    weights = [torch.randn(n, k, device=device, dtype=dtype) for _ in range(count)]
    x = torch.randn(width, k, device=device, dtype=dtype)
    moved = count * n * k * 2
    y = torch.empty(4 * width * n, device=device, dtype=dtype)
    rows: list[dict[str, Any]] = []
    cublas = [lambda w=w: torch.matmul(x, w.t()) for w in weights]
    ms = graph_ms(cublas, steps) if device.type == "cuda" else float("nan")
    rows.append({"kernel": "cublas", "ms": ms, "tbs": moved / ms / 1e9})
    print(f"{n}x{k} W={width}: cuBLAS {ms:.3f} ms, {moved / ms / 1e9:.2f} TB/s", flush=True)
    for bn, bk, warps, stages, split in tiles(quick):
        if n % bn or k % (bk * split):
            continue
        grid = (n // bn, split)
        common = {"W": width, "WP": 16, "BN": bn, "BK": bk, "SPLIT": split}
        launch = {"num_warps": warps, "num_stages": stages, **common}
        kinds: dict[str, list[Callable[[], None]]] = {
            "pointer": [
                functools.partial(bare_matmat[grid], w, x, y, n, k, **launch) for w in weights
            ],
            "tma": [
                functools.partial(
                    bare_matmat[grid],
                    TensorDescriptor.from_tensor(w, [bn, bk]),
                    x,
                    y,
                    n,
                    k,
                    TMA=True,
                    **launch,
                )
                for w in weights
            ],
        }
        for kind, launches in kinds.items():
            try:
                if split == 1:  # the kernels compute the product, not only stream
                    launches[0]()
                    want = (x.float() @ weights[0].float().t()).flatten()
                    got = y[: width * n].float()
                    if not torch.allclose(got, want, rtol=2e-2, atol=2e-1):
                        raise AssertionError(f"wrong product: {(got - want).abs().max()}")
                ms = graph_ms(launches, steps) if device.type == "cuda" else float("nan")
            except Exception as exc:  # a tile the compiler refuses is reported, not fatal
                print(f"  {kind} {bn}x{bk} w{warps} s{stages} split {split}: {exc!r:.120}")
                continue
            tbs = moved / ms / 1e9
            rows.append(
                {
                    "kernel": kind,
                    "tile": [bn, bk, warps, stages, split],
                    "programs": grid[0] * split,
                    "ms": ms,
                    "tbs": tbs,
                }
            )
    for kind in ("pointer", "tma"):
        best = sorted((r for r in rows if r["kernel"] == kind), key=lambda r: r["ms"])[:5]
        for row in best:
            bn, bk, warps, stages, split = row["tile"]
            print(
                f"  {kind:7s} {bn:3d}x{bk:3d} w{warps} s{stages} split {split} "
                f"({row['programs']:5d} programs): {row['ms']:.3f} ms, {row['tbs']:.2f} TB/s",
                flush=True,
            )
    return rows


# Kernel variants `--variants` times on a few tiles: the bare kernel with the fused kernel's
# habits one at a time.
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "evict_first": {"HINT": "evict_first"},
    "peeled": {"PEEL": True},
    "evict_first+peeled": {"HINT": "evict_first", "PEEL": True},
}
VARIANT_TILES = ((64, 128, 8, 3, 1), (64, 128, 4, 3, 1), (32, 256, 4, 3, 2), (64, 256, 4, 5, 2))


def variants(
    shape: tuple[int, int], width: int, steps: int, device: torch.device
) -> dict[str, float]:
    """ms of each VARIANTS kernel on each VARIANT_TILES tile (42 weights, or fewer, as sweep)."""
    n, k = shape
    count = max(2, min(LAYERS, 2_500_000_000 // (n * k * 2)))
    weights = [torch.randn(n, k, device=device, dtype=torch.bfloat16) for _ in range(count)]
    x = torch.randn(width, k, device=device, dtype=torch.bfloat16)
    y = torch.empty(4 * width * n, device=device, dtype=torch.bfloat16)
    moved = count * n * k * 2
    found: dict[str, float] = {}
    for (bn, bk, warps, stages, split), (name, flags) in itertools.product(
        VARIANT_TILES, VARIANTS.items()
    ):
        if n % bn or k % (bk * split):
            continue
        launch = {"W": width, "WP": 16, "BN": bn, "BK": bk, "SPLIT": split, **flags}
        grid = (n // bn, split)
        launches: list[Callable[[], None]] = [
            functools.partial(
                bare_matmat[grid], w, x, y, n, k, num_warps=warps, num_stages=stages, **launch
            )
            for w in weights
        ]
        label = f"{n}x{k} {bn}x{bk} w{warps} s{stages} split {split} {name}"
        found[label] = ms = graph_ms(launches, steps)
        print(f"  {label}: {ms:.3f} ms, {moved / ms / 1e9:.2f} TB/s", flush=True)
    return found


# Tiles `--fused` times the verify step's own gate+up and down mat-mats on (the tiles shipped
# before the kernel stopped loading its first tile before the PDL wait first).
FUSED_TILES = {
    "10240x2560": ((64, 128, 8, 3, 1), (64, 128, 4, 3, 1), (32, 128, 4, 3, 1), (128, 128, 4, 3, 1)),
    "2560x10240": ((32, 128, 4, 4, 2), (64, 256, 4, 5, 2), (64, 128, 4, 5, 2), (32, 256, 4, 3, 2)),
}


def fused_groups(width: int, steps: int, device: torch.device) -> dict[str, float]:
    """The fused verify step's (random E4B weights, shipped tiles, position 1024) gate+up and
    down mat-mats alone, 42 launches a graph, with PDL and L2 hints on and off and a few
    tiles: which of the fused kernel's habits costs the bandwidth."""
    from swarmlab.engine.bench import random_transformers_model
    from swarmlab.engine.fast import fused_kernels as fk
    from swarmlab.engine.fast.fused import MatvecConfig, shipped_configs
    from swarmlab.engine.fast.fused_verify import FusedVerifyStep
    from swarmlab.engine.fast.model import FastDecoder

    model = random_transformers_model("gemma-4-e4b", device, seed=0)
    fast = FastDecoder.from_transformers(model, max_len=2048, max_step_tokens=16)
    del model
    step = FusedVerifyStep(fast, width, use_pdl=True)
    step.use_configs(shipped_configs(device))
    step.positions.copy_(torch.arange(1024, 1024 + width, device=device))
    found: dict[str, float] = {}
    original = [(m.config, m.use_pdl, m.cache_hints) for m in step.matmats]
    for shape, tiles in FUSED_TILES.items():
        group = [m for m in step.matmats if m.key.startswith(shape + ":")]
        moved = sum(m.weight.numel() * m.weight.element_size() for m in group)
        for tile in (MatvecConfig(*t[:4], split=t[4]) for t in tiles):
            for pdl, hints in itertools.product((True, False), (True, False)):
                for launch in group:
                    launch.config, launch.use_pdl, launch.cache_hints = tile, pdl, hints
                label = (
                    f"fused {shape} {tile.block_n}x{tile.block_k} w{tile.warps} s{tile.stages} "
                    f"split {tile.split} pdl={int(pdl)} hints={int(hints)}"
                )
                try:
                    with torch.inference_mode():
                        ms = graph_ms(list(group), steps)
                except fk.OUT_OF_RESOURCES as exc:
                    print(f"  {label}: does not fit ({exc})", flush=True)
                    continue
                found[label] = ms
                print(f"  {label}: {ms:.3f} ms, {moved / ms / 1e9:.2f} TB/s", flush=True)
    # The whole step with its own tiles, and with gate+up and down launched without PDL.
    big = [m for m in step.matmats if m.key.split(":")[0] in FUSED_TILES]
    for variant in ("as built", "gate+up and down without PDL"):
        for launch, (config, pdl, hints) in zip(step.matmats, original, strict=True):
            launch.config, launch.use_pdl, launch.cache_hints = config, pdl, hints
            launch.use_pdl = pdl and launch not in big if variant != "as built" else pdl
        with torch.inference_mode():
            found[f"step: {variant}"] = ms = graph_ms(step.launches, steps)
        print(f"  whole step W={width}, {variant}: {ms:.3f} ms", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=5)
    parser.add_argument("--shapes", default="20480x2560,2560x10240,2560x2048,262144x2560")
    parser.add_argument("--quick", action="store_true", help="four tiles, to check it runs")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cpu", action="store_true", help="check under TRITON_INTERPRET=1")
    parser.add_argument(
        "--variants", action="store_true", help="the bare kernel with eviction hints and a peel"
    )
    parser.add_argument(
        "--fused", action="store_true", help="the verify step's own mat-mats, PDL/hints on/off"
    )
    args = parser.parse_args()
    device = torch.device("cpu" if args.cpu else "cuda")
    torch.manual_seed(0)
    report: dict[str, Any] = {"width": args.width, "shapes": {}}
    if args.fused:
        report["fused"] = fused_groups(args.width, args.steps, device)
    if args.variants:
        report["variants"] = {}
        for text in args.shapes.split(","):
            n, k = (int(part) for part in text.split("x"))
            report["variants"].update(variants((n, k), args.width, args.steps, device))
    if args.fused or args.variants:
        args.shapes = ""
    for text in filter(None, args.shapes.split(",")):
        n, k = (int(part) for part in text.split("x"))
        report["shapes"][text] = sweep((n, k), args.width, args.quick, args.steps, device)
        torch.cuda.empty_cache()
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
