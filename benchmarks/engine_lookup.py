"""What prompt-lookup speculation costs a step on the fast runner, drafted on the host (the
`NgramDrafter` loop: a host read, a Python search, a captured verification) or on the device
(`LookupSpeculator`: search, verification and acceptance in one CUDA graph), and what that
implies at a given acceptance.

Random E4B-shaped weights (no real checkpoint here), a 1,024-token prompt. Acceptance on
random weights says nothing about real text, so rates are projected at the per-position
acceptance the challenge quotes for the MTP assistant (the same profile as
`engine_assistant.py`, for comparison) and printed as the break-even: the tokens a step must
keep to beat plain decoding. A last line decodes 512 tokens end to end with the one-graph
step, acceptance as it comes on these weights. CUDA only. Usage:
python benchmarks/engine_lookup.py [--k 4 --k 7] [--fused] [--out lookup.json]
`--fused` makes the target the fused runner (`FusedSettings(use_pdl=True)`: fused decode and
verify steps with the shipped tiles); without it the Triton mat-vec runner, compiled.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

import torch

from swarmlab.engine.bench import random_transformers_model
from swarmlab.engine.fast.graphs import wall_ms
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import FusedSettings, GreedyRunner
from swarmlab.engine.fast.spec_graph import LookupSpeculator
from swarmlab.engine.quant import GemvLinear, swap_linears
from swarmlab.engine.speculative import NgramDrafter

# The challenge's quoted per-position acceptance of the MTP assistant (K = 7), as in
# benchmarks/engine_assistant.py.
ACCEPTANCE = (0.69, 0.53, 0.43, 0.34, 0.27, 0.22, 0.17)


def build_runner(fused: bool, k_max: int) -> GreedyRunner:
    model = random_transformers_model("gemma-4-e4b", torch.device("cuda"), seed=0)
    fast = FastDecoder.from_transformers(model, max_len=2048, max_step_tokens=512)
    del model
    if not fused:
        swap_linears(fast, GemvLinear, use_kernel=True)
    return GreedyRunner(
        fast,
        prefill_chunk=512,
        use_graph=True,
        compile_step=not fused,
        verify_widths=tuple(range(2, k_max + 2)),
        fused=FusedSettings(use_pdl=True) if fused else None,
    )


def measure_k(runner: GreedyRunner, prompt: list[int], k: int, decode: float) -> dict[str, Any]:
    """One K: host-loop and one-graph step times, the search alone, projected rates."""
    first = runner.prefill(prompt).tolist()
    context = prompt + first
    drafter = NgramDrafter()
    verify = wall_ms(lambda: runner.verify([first[0]] + [1] * k, len(prompt)))
    search = wall_ms(lambda: drafter.propose(context, k), repeats=200)
    host_step = wall_ms(
        lambda: runner.verify([context[-1], *drafter.propose(context, k)], len(context) - 1)
    )
    row: dict[str, Any] = {"k": k, "verify_ms": verify, "host_search_ms": search}
    row["host_step_ms"] = host_step
    for compiled in (False, True):
        speculator = LookupSpeculator(runner, k, compile_step=compiled)
        speculator.start(prompt, 512)
        key = "graph_step_compiled_ms" if compiled else "graph_step_ms"
        row[key] = wall_ms(functools.partial(speculator.run_steps, 1))
    tokens = 1 + sum(ACCEPTANCE[:k])
    best = min(row["graph_step_ms"], row["graph_step_compiled_ms"])
    row["tokens_per_step_quoted"] = tokens
    row["host_tok_s"] = tokens / host_step * 1e3
    row["graph_tok_s"] = tokens / best * 1e3
    row["break_even_tokens"] = best / decode
    print(
        f"K={k}: verify {verify:.3f} ms; host loop step {host_step:.3f} ms (search "
        f"{search * 1e3:.0f} us); one-graph step {row['graph_step_ms']:.3f} ms, search compiled "
        f"{row['graph_step_compiled_ms']:.3f} ms; at the quoted acceptance ({tokens:.2f} "
        f"tokens/step) host loop {row['host_tok_s']:.0f} tok/s, one graph "
        f"{row['graph_tok_s']:.0f} tok/s ({row['graph_tok_s'] * decode / 1e3:.2f}x decode); "
        f"break-even {row['break_even_tokens']:.2f} tokens/step"
    )
    return row


def end_to_end(runner: GreedyRunner, prompt: list[int], k: int) -> dict[str, Any]:
    """512 new tokens through the one-graph step (search compiled), acceptance as it comes."""
    speculator = LookupSpeculator(runner, k, compile_step=True)
    speculator.generate(prompt, 32)
    torch.cuda.synchronize()
    began = time.perf_counter()
    tokens, stats = speculator.generate(prompt, 512)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    greedy = runner.generate(prompt, 512)
    same = next(
        (i for i, (a, b) in enumerate(zip(tokens, greedy, strict=False)) if a != b), len(tokens)
    )
    row = {
        "k": k,
        "new_tokens": len(tokens),
        "seconds": seconds,
        "tok_s": len(tokens) / seconds,
        "tokens_per_step": stats.tokens_per_step,
        "equals_greedy": tokens == greedy,
        "first_difference": same,
    }
    # On random bf16 weights the verify step's mat-mats round differently from the decode
    # step's mat-vecs, and a random 42-layer network amplifies that (docs/engine-performance.md).
    print(
        f"end to end, K={k}: {len(tokens)} tokens in {seconds * 1e3:.1f} ms (with the "
        f"prefill) = {row['tok_s']:.0f} tok/s, {stats.tokens_per_step:.2f} tokens/step on "
        f"random weights; equals plain bf16 greedy: {row['equals_greedy']} (first "
        f"{same} tokens equal)"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k", type=int, action="append", help="drafts per step (repeatable)")
    parser.add_argument("--fused", action="store_true", help="fused decode and verify steps")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    ks = tuple(args.k or (1, 2, 4, 7))
    torch.manual_seed(0)
    runner = build_runner(args.fused, max(ks))
    if runner.verify_fallbacks:
        print(f"unfused verify widths: {runner.verify_fallbacks}")
    prompt = torch.randint(0, 262_144, (1024,), generator=torch.Generator().manual_seed(1))
    ids = prompt.tolist()
    runner.prefill(ids)
    decode = wall_ms(lambda: runner.decode_steps(1))
    print(f"decode step {decode:.3f} ms ({1e3 / decode:.0f} tok/s)")
    rows = [measure_k(runner, ids, k, decode) for k in ks]
    result = {
        "fused": args.fused,
        "decode_ms": decode,
        "per_k": rows,
        "end_to_end": end_to_end(runner, ids, 4),
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
