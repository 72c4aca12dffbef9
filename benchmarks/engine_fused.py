"""Where the fused decode step's time goes (random E4B weights, one GPU).

Prints, for the fused step with and without programmatic dependent launch: the CUDA-graph
step time, the summed kernel time per kernel kind (torch profiler over un-captured steps),
and the step time of graphs holding only the mat-vecs or only the attention launches (their
outputs are meaningless; their time is not). Gap = graph step time - summed kernel time.
First, with PDL, the step with the q/k prep inside attention or as its own launch
(`fuse_prep`), with and without the L2 eviction hints (`cache_hints`; `--only-variants`
stops there); last, the step time for a few attention split counts. `--tune-in-step PATH`
instead chooses tiles by timing the whole step and writes them as a tiles file.
`--only-attention` instead times attention launch variants (pipeline stages, warps, split
counts, early loads, and parts of the kernel left out; `attention_variants`) and stops.
`--verify-widths 2-9` instead times, with PDL at position 1024, the fused decode step and the
fused verify step (`fused_verify.py`) of each width in CUDA graphs, prints both and their ratio
(what a speculative step costs against a decode step), and stops; `--verify-tiles` also tries
a few mat-mat tiles per width (all mat-mats at once) and reports the fastest. The width is a
compile-time constant of every verify kernel, so each width compiles its own ~20 kernels (the
mat-mats again per tile): sweep tiles on one or two widths (`--verify-widths 4,9 --verify-tiles`).
`--verify-fma` also times the variant whose mat-mats multiply in float32 per column (the
mat-vec's way) instead of through `tl.dot` on 16 padded columns. `--verify-groups` also times
each launch group of the decode and verify steps alone (`breakdown`: mat-vecs and mat-mats by
shape, with their TB/s, attention, merge, finalizers, ...). `--verify-tune tiles.json` first
chooses the verify mat-mat tiles per shape at the first width by timing the whole step, writes
them, and times every width with them.
`--screen` instead measures the screened lm_head (`FusedDecodeStep(screen_head=True)`): the
whole step against the plain one at position 1024, the screen's tiles timed in the step, the
screen and its exact pass alone, and a 1,024-token random prompt decoded 256 tokens by both
runners (tokens compared, candidates a step counted), then stops; with `--verify-widths` it
instead times the screened decode and verify steps against the plain verify step.
Usage: python benchmarks/engine_fused.py [--configs bench.json|tiles.json] [--steps 50]
       [--only-variants] [--only-attention] [--tune-in-step tiles.json] [--int8] [--screen]
       [--verify-widths 2-9 [--verify-tiles] [--verify-fma] [--verify-groups]
        [--verify-tune tiles.json]] [--out report.json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from swarmlab.engine.bench import random_transformers_model
from swarmlab.engine.fast import fused_kernels as fk
from swarmlab.engine.fast.fused import (
    FusedDecodeStep,
    MatvecConfig,
    _Matvec,
    candidate_configs,
    read_configs,
    shipped_configs,
)
from swarmlab.engine.fast.fused_verify import MATMAT_TILES, FusedVerifyStep, _Matmat
from swarmlab.engine.fast.graphs import graph_ms
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import FusedSettings, GreedyRunner
from swarmlab.engine.quant import Int8Linear, swap_linears


def step_state(device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Token, position and count, and a history, for a FusedDecodeStep at position 1024."""
    state = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(3)]
    state[1].fill_(1024)  # attend over a 1k-token context
    return state, torch.zeros(2048, dtype=torch.long, device=device)


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


EPILOGUES = {0: "", 1: " scale", 2: " ple-gate", 3: " lm-head", 4: " geglu", 5: " lm-head screen"}


def launch_label(launch: Callable[[], None]) -> str:
    """A launch's group in `breakdown`: a mat-vec or mat-mat by shape and epilogue, any
    other launch by its function's name (prep, attend, merge, finalize, finish)."""
    if isinstance(launch, (_Matvec, _Matmat)):
        kind = "mat-vec" if isinstance(launch, _Matvec) else "mat-mat"
        return f"{kind} {launch.rows}x{launch.k}{EPILOGUES[launch.flags['EPI']]}"
    return str(getattr(launch, "__name__", type(launch).__name__)).lstrip("_")


def breakdown(launches: list[Callable[[], None]], steps: int) -> dict[str, dict[str, float]]:
    """Per launch group (`launch_label`): how many launches, and the median ms of a CUDA
    graph holding only them in step order (with PDL where the step uses it; outputs are
    meaningless, time is not), with the weights' TB/s for mat-vec and mat-mat groups. The
    groups' sum against the whole step shows how much they overlap."""
    groups: dict[str, list[Callable[[], None]]] = defaultdict(list)
    for launch in launches:
        groups[launch_label(launch)].append(launch)
    rows: dict[str, dict[str, float]] = {}
    for label, group in groups.items():
        with torch.inference_mode():
            ms = graph_ms(group, steps)
        row = {"launches": len(group), "ms": ms}
        weights = [m.weight for m in group if isinstance(m, (_Matvec, _Matmat))]
        if weights:
            moved = sum(w.numel() * w.element_size() for w in weights)
            row["tbs"] = moved / ms / 1e9
        rows[label] = row
    for label, row in sorted(rows.items(), key=lambda item: -item[1]["ms"]):
        rate = f", {row['tbs']:.2f} TB/s" if "tbs" in row else ""
        print(f"   {row['ms']:7.3f} ms  {int(row['launches']):4d} x {label}{rate}", flush=True)
    print(f"   {sum(row['ms'] for row in rows.values()):7.3f} ms  summed over groups", flush=True)
    return rows


def step_variants(fast: FastDecoder, configs: dict[str, Any], steps: int) -> dict[str, float]:
    """With PDL: the whole step, and a graph of only its attention (+ prep) and finish
    launches, with the q/k prep inside attention or as its own launch, with and without the
    L2 eviction hints."""
    device = fast.device
    state, history = step_state(device)
    results: dict[str, float] = {}
    for fuse_prep in (False, True):
        for hints in (False, True):
            step = FusedDecodeStep(
                fast, *state, history, use_pdl=True, fuse_prep=fuse_prep, cache_hints=hints
            )
            step.use_configs(configs)
            state[1].fill_(1024)
            name = "prep in attention" if fuse_prep else "prep launch"
            name += ", L2 hints" if hints else ", no L2 hints"
            with torch.inference_mode():
                results[name] = ms = graph_ms(step.launches, steps)
                others = [launch for launch in step.launches if not isinstance(launch, _Matvec)]
                results[f"{name}: attention+prep+finish only"] = alone = graph_ms(others, steps)
            print(
                f"{name}: {ms:.3f} ms ({1e3 / ms:.1f} tok/s); attention+prep+finish alone "
                f"{alone:.3f} ms",
                flush=True,
            )
    return results


# Step variants: FusedDecodeStep keyword arguments on top of its defaults (first keys read
# before the PDL wait, finalizers and the split merge as launches of their own, 32/64
# splits, 32 keys a block).
# "N/M splits" is N programs a KV head on sliding layers and M on global ones; 1 means no
# merge at all.
ATTENTION_VARIANTS: dict[str, dict[str, Any]] = {
    "default (stages 1)": {},
    "before: finalizers in the mat-vecs, merge in attention, no prewait, 8/16 splits, 64/32 keys": {
        "finalize_launch": False,
        "merge_launch": False,
        "attention_prewait": False,
        "splits": {"sliding_attention": 8, "full_attention": 16},
        "key_blocks": {"sliding_attention": 64, "full_attention": 32},
    },
    "Triton's default stages": {"attention_stages": None},
    "stages 2": {"attention_stages": 2},
    "warps 4": {"attention_warps": 4},
    "early loads": {"attention_early": True},
    "early loads, stages 1": {"attention_early": True, "attention_stages": 1},
    "1/16 splits": {"splits": {"sliding_attention": 1, "full_attention": 16}},
    "1/4 splits": {"splits": {"sliding_attention": 1, "full_attention": 4}},
    "2/8 splits": {"splits": {"sliding_attention": 2, "full_attention": 8}},
    "1/4 splits, early loads": {
        "splits": {"sliding_attention": 1, "full_attention": 4},
        "attention_early": True,
    },
    # Parts left out (wrong results, true timings): what each costs in the chain.
    "no key loop": {"attention_ablate": fk.ABLATE_KEYS},
    "no query prep": {"attention_ablate": fk.ABLATE_QUERY},
    "no merge": {"attention_ablate": fk.ABLATE_MERGE},
    "empty kernel (no query prep, key loop or merge)": {
        "attention_ablate": fk.ABLATE_KEYS | fk.ABLATE_QUERY | fk.ABLATE_MERGE
    },
    # Position and first cached keys read before the PDL wait.
    "prewait": {"attention_prewait": True},
    "prewait, 8/32 splits": {
        "attention_prewait": True,
        "splits": {"sliding_attention": 8, "full_attention": 32},
    },
    "prewait, 64 keys a global block": {
        "attention_prewait": True,
        "key_blocks": {"full_attention": 64},
    },
    "prewait, 16/32 splits, 32 keys a block": {
        "attention_prewait": True,
        "splits": {"sliding_attention": 16, "full_attention": 32},
        "key_blocks": {"sliding_attention": 32, "full_attention": 32},
    },
    "prewait, 16/32 splits, 32/64 keys a block": {
        "attention_prewait": True,
        "splits": {"sliding_attention": 16, "full_attention": 32},
        "key_blocks": {"sliding_attention": 32, "full_attention": 64},
    },
    # Finalizers as launches of their own (no counter in the mat-vecs).
    "finalize launches": {"finalize_launch": True},
    "finalize launches, prewait, 16/32 splits, 32 keys a block": {
        "finalize_launch": True,
        "attention_prewait": True,
        "splits": {"sliding_attention": 16, "full_attention": 32},
        "key_blocks": {"sliding_attention": 32, "full_attention": 32},
    },
    "finalize launches, prewait, 16/32 splits, 32/64 keys a block": {
        "finalize_launch": True,
        "attention_prewait": True,
        "splits": {"sliding_attention": 16, "full_attention": 32},
        "key_blocks": {"sliding_attention": 32, "full_attention": 64},
    },
    # Attention's splits merged by a launch of their own (no counter in attention).
    "merge launches": {"merge_launch": True},
    "merge launches, 8/16 splits": {
        "merge_launch": True,
        "splits": {"sliding_attention": 8, "full_attention": 16},
    },
    "merge launches, 32/32 splits": {
        "merge_launch": True,
        "splits": {"sliding_attention": 32, "full_attention": 32},
    },
    "merge launches, 32/64 splits": {
        "merge_launch": True,
        "splits": {"sliding_attention": 32, "full_attention": 64},
    },
    # Each merge program writes part of a query head (more programs, fewer loads each;
    # fused.MERGE_DIMS is the default), or a whole head (None).
    "merge launches of whole heads": {"merge_dims": None},
    "merge launches of 128 dimensions": {"merge_dims": 128},
    "merge launches of 64 dimensions": {"merge_dims": 64},
    "merge launches of 32 dimensions": {"merge_dims": 32},
    "merge launches of 16 dimensions": {"merge_dims": 16},
    # Down's finalizer as the PLE gate's prologue (every one of its programs), not a launch.
    "PLE gate finalizes down": {"ple_gate_prologue": True},
    # The mat-vecs' finalizers left out (wrong results, true timings).
    "no finalizer work": {"final_ablate": 1},
    "no finalizer work or counters": {"final_ablate": 2},
    "empty attention kernel, no finalizers": {
        "attention_ablate": fk.ABLATE_KEYS | fk.ABLATE_QUERY | fk.ABLATE_MERGE,
        "final_ablate": 2,
    },
}


def attention_variants(
    fast: FastDecoder, configs: dict[str, Any], steps: int, names: list[str] | None = None
) -> dict[str, Any]:
    """With PDL, at position 1024, for each of ATTENTION_VARIANTS (or those `names`): the
    whole step, and a graph of only its attention and finish launches (no mat-vecs: what the
    attention chain costs)."""
    device = fast.device
    state, history = step_state(device)
    results: dict[str, Any] = {}
    unknown = sorted(set(names or ()) - set(ATTENTION_VARIANTS))
    if unknown:
        raise SystemExit(f"unknown --variant {unknown}; known: {sorted(ATTENTION_VARIANTS)}")
    for name, options in ATTENTION_VARIANTS.items():
        if names and name not in names:
            continue
        step = FusedDecodeStep(fast, *state, history, use_pdl=True, **options)
        step.use_configs(configs)
        others = [launch for launch in step.launches if not isinstance(launch, _Matvec)]
        with torch.inference_mode():
            # Each replay advances the position: both graphs start from 1024.
            state[1].fill_(1024)
            state[2].fill_(0)
            whole = graph_ms(step.launches, steps)
            state[1].fill_(1024)
            state[2].fill_(0)
            alone = graph_ms(others, steps)
        layers = len(others) - 1
        results[name] = {
            "options": options,
            "step_ms": whole,
            "attention_finish_only_ms": alone,
            "attention_us_per_layer": alone * 1e3 / layers,
        }
        print(
            f"{name}: step {whole:.3f} ms ({1e3 / whole:.1f} tok/s); attention+finish alone "
            f"{alone:.3f} ms ({alone * 1e3 / layers:.1f} us a layer)",
            flush=True,
        )
    return results


def every_row(step: FusedDecodeStep, rewound: Callable[..., float]) -> float:
    """The exact pass alone with the screen's floor at -inf (every row a candidate)."""
    step.floor.fill_(float("-inf"))
    return rewound([step._head_verify])


# Taller tiles than `candidate_configs` offers: alone, the screen ran fastest with 64 x 128
# (0.200 ms against 0.234 for 16 x 128 on an H200).
SCREEN_TILES = [
    MatvecConfig(32, 128, 4, 4),
    MatvecConfig(64, 128, 8, 4),
    MatvecConfig(32, 256, 8, 3),
    MatvecConfig(64, 64, 4, 4),
]


def screen_report(fast: FastDecoder, configs: dict[str, Any], steps: int) -> dict[str, Any]:
    """The screened lm_head against the plain one. A random 1,024-token prompt is decoded for
    256 tokens by a plain and by a screened fused runner (PDL): their tokens are compared and
    the rows the exact pass computed at each step counted. Then, in each runner's state
    after that (a real context, so real candidate counts), the whole step and its lm_head
    launches alone are timed as CUDA graphs, rewound after each; for the screened runner
    first each of the screen's candidate tiles in the whole step (the fastest kept), and
    the exact pass alone with the floor at -inf: every row a candidate, its worst case.
    (The other modes' state, token 0 at position 1024 over an empty cache, is that worst
    case: token 0's embedding row is zero, so is every hidden state, and all logits tie.)"""
    found: dict[str, Any] = {}
    prompt = torch.randint(
        0, fast.shape.vocab_size, (1024,), generator=torch.Generator().manual_seed(0)
    ).tolist()
    runs: dict[str, list[int]] = {}
    for screen in (False, True):
        name = "screened" if screen else "plain"
        runner = GreedyRunner(
            fast,
            prefill_chunk=fast.max_step_tokens - 1,
            fused=FusedSettings(use_pdl=True, configs=configs, screen_head=screen),
        )
        step = runner.fused
        assert step is not None
        counts: list[int] = []
        with torch.inference_mode():
            first = runner.prefill(prompt)
            runner.history[0:1].copy_(first)
            runner.token.copy_(first)
            runner.position.fill_(len(prompt))
            runner.count.fill_(1)
            for _ in range(255):
                runner.decode_steps(1)
                if screen:
                    counts.append(int(step.seen.sum()))
        runs[name] = runner.history[:256].tolist()
        start, done = int(runner.position), int(runner.count)

        def rewound(
            launches: list[Callable[[], None]],
            runner: GreedyRunner = runner,
            start: int = start,
            done: int = done,
        ) -> float:
            with torch.inference_mode():
                ms = graph_ms(launches, steps)
            runner.position.fill_(start)
            runner.count.fill_(done)
            return ms

        if screen:
            head = step.head
            tiles: dict[str, tuple[float, MatvecConfig]] = {}
            for config in filter(head.accepts, candidate_configs(head.rows, head.k) + SCREEN_TILES):
                head.config = config
                tiles[str(config)] = (rewound(step.launches), config)
                print(f"screen tile {config}: step {tiles[str(config)][0]:.3f} ms", flush=True)
            _, head.config = min(tiles.values(), key=lambda item: item[0])
            ordered = sorted(counts)
            found |= {
                "screen_tiles_ms": {key: ms for key, (ms, _) in tiles.items()},
                "screen_configs": {head.key: asdict(head.config)},
                "screen_alone_ms": rewound([head]),
                "screen_and_exact_pass_ms": rewound([head, step._head_verify]),
                "exact_pass_every_row_ms": every_row(step, rewound),
                "candidates": {
                    "mean": sum(counts) / len(counts),
                    "median": ordered[len(ordered) // 2],
                    "max": ordered[-1],
                    "min": ordered[0],
                },
            }
        else:
            found["plain_head_alone_ms"] = rewound([step.head])
        found[f"{name}_ms"] = rewound(step.launches)
        print(f"{name} step {found[f'{name}_ms']:.3f} ms ({len(step.launches)} launches)")
        del runner, step
    pairs = zip(runs["plain"], runs["screened"], strict=True)
    found["tokens_equal_for"] = next((i for i, (a, b) in enumerate(pairs) if a != b), 256)
    candidates = found["candidates"]
    print(
        f"screened {found['screened_ms']:.3f} ms against plain {found['plain_ms']:.3f} ms; "
        f"lm_head alone: plain {found['plain_head_alone_ms']:.3f} ms, screen "
        f"{found['screen_alone_ms']:.3f}, screen + exact pass "
        f"{found['screen_and_exact_pass_ms']:.3f}\n"
        f"256 tokens from a 1,024-token prompt: equal for the first {found['tokens_equal_for']}; "
        f"candidates a step mean {candidates['mean']:.1f}, median {candidates['median']}, max "
        f"{candidates['max']} of {fast.shape.vocab_size}; exact pass over every row "
        f"{found['exact_pass_every_row_ms']:.3f} ms",
        flush=True,
    )
    return found


def parse_widths(text: str) -> list[int]:
    """Verify widths from "2-9" or "2,4,9"."""
    widths: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        widths += range(int(low), int(high or low) + 1)
    return widths


def verify_tiles(step: FusedVerifyStep, steps: int) -> dict[str, float]:
    """Step ms with each of MATMAT_TILES applied to every mat-mat (a coarse first sweep; the
    step is left on the fastest)."""
    timings: dict[str, float] = {}
    best: tuple[float, MatvecConfig] | None = None
    for tile in MATMAT_TILES:
        config = MatvecConfig(*tile)
        for launch in step.matmats:
            launch.config = config
        with torch.inference_mode():
            ms = graph_ms(step.launches, steps)
        timings[str(tile)] = ms
        if best is None or ms < best[0]:
            best = (ms, config)
    assert best is not None
    for launch in step.matmats:
        launch.config = best[1]
    return timings


def verify_widths(
    fast: FastDecoder,
    configs: dict[str, Any],
    widths: list[int],
    steps: int,
    sweep_tiles: bool = False,
    fma: bool = False,
    groups: bool = False,
    screen: bool = False,
) -> dict[str, Any]:
    """With PDL at position 1024: the fused decode step, then the fused verify step of each
    width (positions 1024..1024+W-1), each as the median replay of a CUDA graph; the ratio
    is verify / decode. Verify mat-mats use their default tiles unless `configs` names them;
    `sweep_tiles` also times MATMAT_TILES per width and reports the fastest, `fma` the step
    whose mat-mats multiply in float32 per column instead of `tl.dot` (`tensor_cores=False`);
    `groups` also the `breakdown` of the decode step and of each width's step. `screen`:
    decode and verify steps read the lm_head through the int8 screen (`screen_head`), the
    plain verify step is timed too, and the verify steps read random tokens (token 0's
    embedding row is zero, so over the empty cache every logit would tie and every row be
    a candidate: the screen's worst case)."""
    device = fast.device
    state, history = step_state(device)
    decode = FusedDecodeStep(fast, *state, history, use_pdl=True, screen_head=screen)
    decode.use_configs(configs)
    with torch.inference_mode():
        # Each replay advances the decode position: it stays near 1024 (history holds 2048).
        decode_ms = graph_ms(decode.launches, steps)
    print(f"decode: {decode_ms:.3f} ms ({len(decode.launches)} launches)", flush=True)
    found: dict[str, Any] = {"position": 1024, "decode_ms": decode_ms, "widths": {}}
    if groups:
        found["decode_groups"] = breakdown(decode.launches, steps)
    generator = torch.Generator().manual_seed(1)
    for width in widths:
        step = FusedVerifyStep(fast, width, use_pdl=True, screen=decode.screen)
        step.use_configs(configs)
        step.positions.copy_(torch.arange(1024, 1024 + width, device=device))
        if screen:
            step.ids.copy_(torch.randint(1, fast.shape.vocab_size, (width,), generator=generator))
        with torch.inference_mode():
            ms = graph_ms(step.launches, steps)
        row: dict[str, Any] = {"verify_ms": ms, "ratio": ms / decode_ms}
        if screen:
            plain = FusedVerifyStep(fast, width, use_pdl=True)
            plain.use_configs(configs)
            plain.positions.copy_(step.positions)
            plain.ids.copy_(step.ids)
            with torch.inference_mode():
                row["plain_verify_ms"] = graph_ms(plain.launches, steps)
            row["candidates"] = step.seen.view(width, -1).sum(dim=1).tolist()
            row["same_tokens"] = plain.out.tolist() == step.out.tolist()
            print(
                f"   plain verify {row['plain_verify_ms']:.3f} ms; screened candidates a "
                f"column {row['candidates']}, same tokens as plain: {row['same_tokens']}",
                flush=True,
            )
        print(
            f"verify W={width} (K={width - 1}): {ms:.3f} ms, {ms / decode_ms:.2f}x decode, "
            f"{len(step.launches)} launches",
            flush=True,
        )
        if groups:
            row["groups"] = breakdown(step.launches, steps)
        if sweep_tiles:
            row["tiles_ms"] = tiles = verify_tiles(step, steps)
            row["best_tiles_ms"] = fastest = min(tiles.values())
            row["best_tiles_ratio"] = fastest / decode_ms
            print(
                f"   tiles: {', '.join(f'{t} {v:.3f}' for t, v in tiles.items())} -> "
                f"{fastest:.3f} ms, {fastest / decode_ms:.2f}x decode",
                flush=True,
            )
        row["launches"] = len(step.launches)
        row["configs"] = step.configs()
        if fma:
            plain = FusedVerifyStep(fast, width, use_pdl=True, tensor_cores=False)
            plain.use_configs(configs)
            plain.positions.copy_(step.positions)
            with torch.inference_mode():
                row["fma_ms"] = fma_ms = graph_ms(plain.launches, steps)
            row["fma_ratio"] = fma_ms / decode_ms
            print(
                f"   without tensor cores: {fma_ms:.3f} ms, {fma_ms / decode_ms:.2f}x decode",
                flush=True,
            )
        found["widths"][str(width)] = row
    return found


def tune_verify(
    fast: FastDecoder, configs: dict[str, Any], width: int, path: Path
) -> dict[str, Any]:
    """Choose the verify step's mat-mat tiles at `width` (position 1024, PDL) by timing the
    whole step (`FusedVerifyStep.tune_in_step`); write them to `path` in the tiles format and
    return `configs` with them on top (they serve every width of the same padded WP)."""
    step = FusedVerifyStep(fast, width, use_pdl=True)
    step.use_configs(configs)
    step.positions.copy_(torch.arange(1024, 1024 + width, device=fast.device))
    with torch.inference_mode():
        report = step.tune_in_step(progress=lambda line: print(line, flush=True))
    print(
        f"verify W={width}: step {report['step_ms_before']:.3f} ms -> "
        f"{report['step_ms_after']:.3f} ms",
        flush=True,
    )
    tiles = {
        "configs": step.configs(),
        "gpu": torch.cuda.get_device_name(fast.device),
        "measured": f"python benchmarks/engine_fused.py --verify-tune (E4B shape, PDL, W={width})",
        "trials": report,
    }
    path.write_text(json.dumps(tiles, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return {**configs, **step.configs()}


def tune_in_step(
    fast: FastDecoder, configs: dict[str, Any], path: Path, flat: bool, options: dict[str, Any]
) -> None:
    device = fast.device
    state, history = step_state(device)
    step = FusedDecodeStep(fast, *state, history, use_pdl=True, **options)
    step.use_configs(configs)
    sms = torch.cuda.get_device_properties(device).multi_processor_count if flat else 0
    with torch.inference_mode():
        report = step.tune_in_step(progress=lambda line: print(line, flush=True), sms=sms)
    print(f"step {report['step_ms_before']:.3f} ms -> {report['step_ms_after']:.3f} ms")
    tiles = {
        "configs": step.configs(),
        "step_options": options,
        "gpu": torch.cuda.get_device_name(device),
        "measured": "python benchmarks/engine_fused.py --tune-in-step (E4B shape, PDL)",
        "trials": report,
    }
    path.write_text(json.dumps(tiles, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", type=Path, help="a tiles file or a bench JSON")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--only-variants", action="store_true", help="skip the breakdown and split variants"
    )
    parser.add_argument(
        "--int8", action="store_true", help="weight-only int8 linears (Int8Linear) throughout"
    )
    parser.add_argument(
        "--only-attention",
        action="store_true",
        help="time the attention launch and finalizer variants (attention_variants), then stop",
    )
    parser.add_argument(
        "--variant",
        action="append",
        help="with --only-attention: only this variant (repeatable; ATTENTION_VARIANTS' names)",
    )
    parser.add_argument(
        "--flat",
        action="store_true",
        help="with --tune-in-step: also try one-wave mat-vec configs (FLAT_TILES)",
    )
    parser.add_argument(
        "--step-options",
        type=json.loads,
        default={},
        help="with --tune-in-step: FusedDecodeStep keyword arguments as JSON (e.g. an "
        "ATTENTION_VARIANTS entry's options)",
    )
    parser.add_argument(
        "--tune-in-step",
        type=Path,
        help="choose tiles by timing the whole step (FusedDecodeStep.tune_in_step) and write "
        "them here in the shipped tiles format; then stop",
    )
    parser.add_argument(
        "--verify-widths",
        type=parse_widths,
        help='time the fused verify step of these widths ("2-9" or "2,4,9", at most 9 here) '
        "against the fused decode step, then stop",
    )
    parser.add_argument(
        "--verify-tiles",
        action="store_true",
        help="with --verify-widths: also time a few mat-mat tiles (MATMAT_TILES) per width "
        "(each compiles every mat-mat again: give one or two widths)",
    )
    parser.add_argument(
        "--verify-groups",
        action="store_true",
        help="with --verify-widths: also time each launch group alone (breakdown) in the "
        "decode step and every width's verify step",
    )
    parser.add_argument(
        "--verify-tune",
        type=Path,
        help="with --verify-widths: first choose mat-mat tiles at the first width by timing the "
        "whole verify step, write them here (tiles format), and time every width with them",
    )
    parser.add_argument(
        "--verify-fma",
        action="store_true",
        help="with --verify-widths: also time the verify step whose mat-mats multiply in "
        "float32 per column, without tensor cores (FusedVerifyStep(tensor_cores=False))",
    )
    parser.add_argument(
        "--screen",
        action="store_true",
        help="measure the screened lm_head (screen_report), then stop; with --verify-widths, "
        "time the screened decode and verify steps against the plain verify step instead",
    )
    args = parser.parse_args()
    device = torch.device("cuda")
    model = random_transformers_model("gemma-4-e4b", device, seed=0)
    fast = FastDecoder.from_transformers(model, max_len=2048, max_step_tokens=9)
    del model
    if args.int8:
        swap_linears(fast, Int8Linear, use_kernel=True)
    configs: dict[str, Any] = (
        read_configs(args.configs) if args.configs else shipped_configs(device)
    )
    if args.screen and not args.verify_widths:
        found = {"screen": screen_report(fast, configs, args.steps)}
        if args.out:
            args.out.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
        return
    if args.tune_in_step:
        tune_in_step(fast, configs, args.tune_in_step, args.flat, args.step_options)
        return
    if args.verify_widths:
        if args.verify_tune:
            configs = tune_verify(fast, configs, args.verify_widths[0], args.verify_tune)
        found = {
            "verify": verify_widths(
                fast,
                configs,
                args.verify_widths,
                args.steps,
                args.verify_tiles,
                args.verify_fma,
                args.verify_groups,
                args.screen,
            )
        }
        if args.out:
            args.out.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
        return
    if args.only_attention:
        found = {"attention": attention_variants(fast, configs, args.steps, args.variant)}
        if args.out:
            args.out.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
        return
    report: dict[str, object] = {"variants": step_variants(fast, configs, args.steps)}
    if args.only_variants:
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return
    for pdl in (False, True):
        state, history = step_state(device)
        step = FusedDecodeStep(fast, *state, history, use_pdl=pdl)
        step.use_configs(configs)
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
    state, history = step_state(device)
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
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
