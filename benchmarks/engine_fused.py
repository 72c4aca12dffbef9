"""Where the fused decode step's time goes (random E4B weights, one GPU).

Prints, for the fused step with and without programmatic dependent launch: the CUDA-graph
step time, the summed kernel time per kernel kind (torch profiler over un-captured steps),
and the step time of graphs holding only the mat-vecs or only the attention launches (their
outputs are meaningless; their time is not). Gap = graph step time - summed kernel time.
Also the step time for each L2 prefetch budget of the mat-vecs (`FusedDecodeStep.set_prefetch`),
released early or late (`--only-prefetch`: that sweep alone); then, with PDL, the step time
for a few attention split counts, and with the q/k prep inside attention against its own
launch (`fuse_prep`).
Usage: python benchmarks/engine_fused.py [--configs bench.json] [--steps 50] [--only-prefetch]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from swarmlab.engine.bench import random_transformers_model
from swarmlab.engine.fast.fused import FusedDecodeStep, _Matvec, shipped_configs
from swarmlab.engine.fast.graphs import capture_graph, replay_seconds
from swarmlab.engine.fast.model import FastDecoder


def graph_ms(launches: list[Callable[[], None]], steps: int) -> float:
    """Median milliseconds of one replay of a graph holding `launches`."""

    def body() -> None:
        for launch in launches:
            launch()

    return replay_seconds(capture_graph(body), steps) * 1e3


def kernel_times(step: FusedDecodeStep) -> dict[str, float]:
    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.device_type.name == "CUDA":
            totals[event.key] += event.self_device_time_total / 3 / 1e3
    return dict(totals)


def prefetch_sweep(fast: FastDecoder, configs: dict[str, Any], steps: int) -> dict[str, float]:
    """Step time (PDL) for each L2 prefetch budget, with the next kernel released at each
    mat-vec's start or only after its weights are read."""
    device = fast.device
    state = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(3)]
    history = torch.zeros(2048, dtype=torch.long, device=device)
    step = FusedDecodeStep(fast, *state, history, use_pdl=True)
    step.use_configs(configs)
    mb = 2**20
    variants: dict[str, int | dict[str, int]] = {
        f"all mat-vecs {megabytes} MB": megabytes * mb for megabytes in (0, 4, 16)
    }
    # The mat-vecs after attention, whose programs wait while a few attention programs run.
    variants |= {
        "o 12 MB": {"o": 12 * mb},
        "o 12 MB, gate+up 16 MB": {"o": 12 * mb, "gate_up": 16 * mb},
        "o 12 MB, gate+up 32 MB": {"o": 12 * mb, "gate_up": 32 * mb},
        "qkv 16 MB, o 12 MB": {"qkv": 16 * mb, "o": 12 * mb},
        "PLE gate + projection 2 MB each": {"ple_gate": 2 * mb, "ple_proj": 2 * mb},
    }
    results: dict[str, float] = {}
    for tail_ple, hints in ((False, False), (True, False), (False, True), (True, True)):
        variant = FusedDecodeStep(
            fast, *state, history, use_pdl=True, tail_ple=tail_ple, cache_hints=hints
        )
        variant.use_configs(configs)
        state[1].fill_(1024)
        with torch.inference_mode():
            ms = graph_ms(variant.launches, steps)
        name = f"down + PLE gate + PLE projection in {'one launch' if tail_ple else 'three'}"
        name += ", L2 hints" if hints else ""
        results[name] = ms
        print(f"{name}: {ms:.3f} ms ({1e3 / ms:.1f} tok/s)", flush=True)
    for late in (False, True):
        for label, budget in variants.items():
            step.set_prefetch(budget, late_release=late)
            state[1].fill_(1024)
            with torch.inference_mode():
                ms = graph_ms(step.launches, steps)
            name = f"{'late' if late else 'early'} release, prefetch {label}"
            results[name] = ms
            print(f"{name}: {ms:.3f} ms ({1e3 / ms:.1f} tok/s)", flush=True)
    return results


def tune_in_step(fast: FastDecoder, configs: dict[str, Any], path: Path) -> None:
    device = fast.device
    state = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(3)]
    history = torch.zeros(2048, dtype=torch.long, device=device)
    step = FusedDecodeStep(fast, *state, history, use_pdl=True)
    step.use_configs(configs)
    state[1].fill_(1024)
    with torch.inference_mode():
        report = step.tune_in_step(progress=lambda line: print(line, flush=True))
    print(f"step {report['step_ms_before']:.3f} ms -> {report['step_ms_after']:.3f} ms")
    tiles = {
        "configs": step.configs(),
        "gpu": torch.cuda.get_device_name(device),
        "measured": "python benchmarks/engine_fused.py --tune-in-step (E4B shape, bf16, PDL)",
        "trials": report,
    }
    path.write_text(json.dumps(tiles, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", type=Path, help="a bench JSON with fused_configs")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--only-prefetch", action="store_true", help="skip the breakdown and split variants"
    )
    parser.add_argument(
        "--tune-in-step",
        type=Path,
        help="choose tiles by timing the whole step (FusedDecodeStep.tune_in_step) and write "
        "them here in the shipped tiles format; then stop",
    )
    args = parser.parse_args()
    device = torch.device("cuda")
    model = random_transformers_model("gemma-4-e4b", device, seed=0)
    fast = FastDecoder.from_transformers(model, max_len=2048, max_step_tokens=9)
    del model
    configs: dict[str, Any] = shipped_configs(device)
    if args.configs:
        modes = json.loads(args.configs.read_text())["modes"].values()
        configs = next((m["fused_configs"] for m in modes if "fused_configs" in m), {})
    if args.tune_in_step:
        tune_in_step(fast, configs, args.tune_in_step)
        return
    report: dict[str, object] = {"prefetch": prefetch_sweep(fast, configs, args.steps)}
    if args.only_prefetch:
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return
    for pdl in (False, True):
        state = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(3)]
        history = torch.zeros(2048, dtype=torch.long, device=device)
        step = FusedDecodeStep(fast, *state, history, use_pdl=pdl)
        step.use_configs(configs)
        state[1].fill_(1024)  # attend over a 1k-token context
        name = "pdl" if pdl else "plain"
        with torch.inference_mode():
            total = graph_ms(step.launches, args.steps)
            matvecs = [launch for launch in step.launches if isinstance(launch, _Matvec)]
            others = [launch for launch in step.launches if not isinstance(launch, _Matvec)]
            only_matvecs = graph_ms(list(matvecs), args.steps)
            only_others = graph_ms(others, args.steps)
            kernels = kernel_times(step) if not pdl else {}
        weight_bytes = sum(m.weight.numel() * m.weight.element_size() for m in matvecs)
        row = {
            "launches": len(step.launches),
            "graph_step_ms": total,
            "matvec_only_ms": only_matvecs,
            "matvec_only_tbs": weight_bytes / only_matvecs / 1e9,
            "attention_prep_finish_only_ms": only_others,
            "kernel_ms": kernels,
            "kernel_total_ms": sum(kernels.values()),
        }
        report[name] = row
        print(
            f"{name}: {len(step.launches)} launches, graph step {total:.3f} ms "
            f"({1e3 / total:.0f} tok/s); mat-vecs alone {only_matvecs:.3f} ms "
            f"({weight_bytes / only_matvecs / 1e9:.2f} TB/s); attention+prep+finish alone "
            f"{only_others:.3f} ms"
        )
        for key, ms in sorted(kernels.items(), key=lambda item: -item[1]):
            print(f"   {ms:7.3f} ms  {key[:90]}")
        if kernels:
            print(
                f"   summed kernel time {sum(kernels.values()):.3f} ms -> gaps "
                f"{total - sum(kernels.values()):.3f} ms"
            )
    # Attention splits and keys per block (sliding, global), with PDL: step time for each.
    state = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(3)]
    history = torch.zeros(2048, dtype=torch.long, device=device)
    variants = {}
    for sliding, full, block_sliding, block_full in (
        (8, 16, 64, 32),
        (8, 16, 32, 16),
        (16, 32, 32, 32),
        (4, 8, 64, 32),
    ):
        step = FusedDecodeStep(
            fast,
            *state,
            history,
            use_pdl=True,
            splits={"sliding_attention": sliding, "full_attention": full},
            key_blocks={"sliding_attention": block_sliding, "full_attention": block_full},
        )
        step.use_configs(configs)
        state[1].fill_(1024)
        with torch.inference_mode():
            name = f"{sliding}x{block_sliding}/{full}x{block_full}"
            variants[name] = graph_ms(step.launches, args.steps)
            others = [launch for launch in step.launches if not isinstance(launch, _Matvec)]
            variants[f"{name} attention+prep+finish only"] = graph_ms(others, args.steps)
    for name, ms in variants.items():
        print(f"splits {name}: {ms:.3f} ms")
    report["splits"] = variants
    # The q/k norms, RoPE and cache write inside attention, or as a launch of their own.
    prep: dict[str, float] = {}
    for fuse_prep in (False, True):
        step = FusedDecodeStep(fast, *state, history, use_pdl=True, fuse_prep=fuse_prep)
        step.use_configs(configs)
        state[1].fill_(1024)
        with torch.inference_mode():
            name = "prep in attention" if fuse_prep else "prep launch"
            prep[name] = graph_ms(step.launches, args.steps)
            others = [launch for launch in step.launches if not isinstance(launch, _Matvec)]
            prep[f"{name} attention+prep+finish only"] = graph_ms(others, args.steps)
    for name, ms in prep.items():
        print(f"{name}: {ms:.3f} ms")
    report["prep"] = prep
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
