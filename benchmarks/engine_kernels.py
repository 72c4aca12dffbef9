"""Per-shape mat-vec bandwidth on the GPU: cuBLAS (torch) against the Triton kernel, and with
--int4 the Triton int4 kernel (groups of 128; its bandwidth counts packed weights, scales and
offsets; autotuning its 12 configs per shape adds about a minute).

Each shape is timed over enough rotating weight copies to overflow L2, replayed from a CUDA
graph, median of repeats. Usage: python benchmarks/engine_kernels.py [--int4] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from swarmlab.engine.fast import kernels
from swarmlab.engine.fast.graphs import capture_graph, replay_seconds
from swarmlab.engine.quant import quantize_int4

# (name, out, in) for Gemma-4 E4B's decode mat-vecs.
SHAPES = [
    ("lm_head", 262144, 2560),
    ("gate+up", 20480, 2560),
    ("down", 2560, 10240),
    ("ple model projection", 10752, 2560),
    ("global q(+k)", 5120, 2560),
    ("global o", 2560, 4096),
    ("sliding qkv", 3072, 2560),
    ("sliding q", 2048, 2560),
    ("sliding o", 2560, 2048),
    ("ple gate", 256, 2560),
    ("ple projection", 2560, 256),
]


def graph_time(body: Callable[[], object], replays: int = 21) -> float:
    """Median seconds of one replay of a CUDA graph holding `body`."""
    return replay_seconds(capture_graph(body), replays)


def measure(n: int, k: int, int4: bool = False) -> dict[str, Any]:
    copies = max(4, int(512e6 // (n * k * 2)))
    weights = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
    for w in weights[:1]:
        kernels.gemv(x, w)  # autotune outside the graph
    nbytes = n * k * 2 * copies
    row: dict[str, Any] = {"copies": copies}
    for name, fn in (("cublas", torch.nn.functional.linear), ("triton", kernels.gemv)):
        seconds = graph_time(lambda fn=fn: [fn(x, w) for w in weights])
        row[f"{name}_tbs"] = nbytes / seconds / 1e12
        row[f"{name}_us"] = seconds / copies * 1e6
    if int4:
        row |= measure_int4(weights, x)
    return row


def measure_int4(weights: list[torch.Tensor], x: torch.Tensor) -> dict[str, Any]:
    packs = [quantize_int4(w, 128) for w in weights]
    kernels.gemv_int4(x, *packs[0])  # autotune outside the graph
    seconds = graph_time(lambda: [kernels.gemv_int4(x, *pack) for pack in packs])
    int4_bytes = sum(t.numel() * t.element_size() for t in packs[0]) * len(packs)
    best = kernels._gemv_int4_kernel.best_config  # which tile and dequantization order won
    return {
        "int4_tbs": int4_bytes / seconds / 1e12,
        "int4_us": seconds / len(packs) * 1e6,
        "int4_config": {**best.kwargs, "num_warps": best.num_warps, "num_stages": best.num_stages},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--int4", action="store_true", help="also time the int4 kernel")
    args = parser.parse_args()
    results = {}
    print(
        f"{'shape':24} {'out x in':>14} {'cuBLAS TB/s':>12} {'Triton TB/s':>12} {'cuBLAS us':>10} "
        f"{'Triton us':>10} {'int4 TB/s':>10} {'int4 us':>8}"
    )
    for name, n, k in SHAPES:
        row = measure(n, k, args.int4)
        results[name] = {"out": n, "in": k, **row}
        print(
            f"{name:24} {f'{n}x{k}':>14} {row['cublas_tbs']:12.2f} {row['triton_tbs']:12.2f} "
            f"{row['cublas_us']:10.1f} {row['triton_us']:10.1f} "
            f"{row.get('int4_tbs', float('nan')):10.2f} {row.get('int4_us', float('nan')):8.1f} "
            f"{row.get('int4_config', '')}"
        )
        torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
