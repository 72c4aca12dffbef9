"""Where a decode step's GPU time goes: kernel times of a few eager steps of the fast path.

Random E4B-shaped weights; the step is torch.compile'd (and Triton mat-vecs swapped in unless
--cublas) but not graph-captured, so the profiler sees each kernel. Usage:
python benchmarks/engine_profile.py [--cublas] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from swarmlab.engine.bench import random_transformers_model
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import GreedyRunner
from swarmlab.engine.quant import GemvLinear, swap_linears


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cublas", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device("cuda")
    model = random_transformers_model("gemma-4-e4b", device, seed=0)
    fast = FastDecoder.from_transformers(model, max_len=2048, max_step_tokens=9)
    del model
    if not args.cublas:
        swap_linears(fast, GemvLinear, use_kernel=True)
    runner = GreedyRunner(fast, prefill_chunk=1024, use_graph=False, compile_step=True)
    prompt = list(range(1000, 2024))
    first = runner.prefill(prompt)
    runner.continue_greedy(first, len(prompt), 8, set())
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        runner.decode_steps(5)
        torch.cuda.synchronize()
    table = prof.key_averages().table(
        sort_by="cuda_time_total", row_limit=25, max_name_column_width=70
    )
    print(table)
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    kernels = sum(e.count for e in events) / 5
    gpu_ms = sum(e.self_device_time_total for e in events) / 5 / 1e3
    print(f"per step: {kernels:.0f} kernels, {gpu_ms:.2f} ms of kernel time")
    if args.out:
        args.out.write_text(
            table + f"\\nper step: {kernels:.0f} kernels, {gpu_ms:.2f} ms\\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
