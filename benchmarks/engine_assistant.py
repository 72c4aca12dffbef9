"""What a Gemma 4 MTP assistant proposal costs next to the target's steps (host loop: a captured
proposal, then a captured verification; one graph: `AssistantSpeculator`'s whole step), and the
speed-up that implies at the challenge's quoted acceptance rates.

Random weights (no real checkpoint here): an E4B-shaped target and an assistant of the released
shape as far as the challenge states it (4 layers, width 256, centroid-masked head over 2,048
clusters keeping 32); its head count and MLP width are guesses (--heads, --intermediate).
Acceptance cannot be measured on random weights, so the projection uses the quoted
per-position acceptance (probability that draft i is accepted). CUDA only. Usage:
python benchmarks/engine_assistant.py [--k 4 --k 6 --k 7] [--compile] [--compile-draft] [--cublas]
[--fused]. `--fused` makes the target the fused runner (`FusedSettings(use_pdl=True)`: the fused
decode step, and the fused verify step of each width with the shipped tiles).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from swarmlab.engine.bench import random_transformers_model
from swarmlab.engine.fast.assistant import AssistantDrafter, AssistantSpeculator, MtpAssistant
from swarmlab.engine.fast.config import GLOBAL, SLIDING, shape_from_config
from swarmlab.engine.fast.graphs import wall_ms
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import FusedSettings, GreedyRunner
from swarmlab.engine.quant import GemvLinear, swap_linears

ACCEPTANCE = (0.69, 0.53, 0.43, 0.34, 0.27, 0.22, 0.17)


def random_assistant(target_config: Any, heads: int, intermediate: int) -> Any:
    """A bf16 `Gemma4AssistantForCausalLM` shaped to draft for `target_config`, on CUDA."""
    from transformers import Gemma4AssistantConfig, Gemma4AssistantForCausalLM, Gemma4TextConfig

    target = shape_from_config(target_config)
    text = Gemma4TextConfig(
        vocab_size=target.vocab_size,
        vocab_size_per_layer_input=0,
        hidden_size_per_layer_input=0,
        hidden_size=256,
        intermediate_size=intermediate,
        num_hidden_layers=4,
        num_attention_heads=heads,
        num_key_value_heads=target.attention[SLIDING].num_kv_heads,
        num_global_key_value_heads=target.attention[GLOBAL].num_kv_heads,
        attention_k_eq_v=True,
        head_dim=target.attention[SLIDING].head_dim,
        global_head_dim=target.attention[GLOBAL].head_dim,
        sliding_window=target.sliding_window,
        layer_types=[SLIDING, SLIDING, SLIDING, GLOBAL],
    )
    config = Gemma4AssistantConfig(
        text_config=text,
        backbone_hidden_size=target.hidden_size,
        use_ordered_embeddings=True,
        num_centroids=2048,
        centroid_intermediate_top_k=32,
    )
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = Gemma4AssistantForCausalLM(config)
            model.masked_embedding.token_ordering.copy_(torch.randperm(target.vocab_size))
    finally:
        torch.set_default_dtype(default)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k", type=int, action="append", help="drafts per step (repeatable)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=2048)
    parser.add_argument("--compile", action="store_true", help="torch.compile the target step")
    parser.add_argument("--cublas", action="store_true", help="keep cuBLAS mat-vecs")
    parser.add_argument(
        "--fused", action="store_true", help="the fused decode and verify steps (with PDL)"
    )
    parser.add_argument(
        "--compile-draft", action="store_true", help="torch.compile the assistant's proposal"
    )
    args = parser.parse_args()
    ks = tuple(args.k or (4, 6, 7))
    torch.manual_seed(0)
    model = random_transformers_model("gemma-4-e4b", torch.device("cuda"), seed=0)
    assistant_model = random_assistant(model.config, args.heads, args.intermediate)
    fast = FastDecoder.from_transformers(model, max_len=2048, max_step_tokens=512)
    del model
    fast.keep_hidden()
    if not args.cublas and not args.fused:
        swap_linears(fast, GemvLinear, use_kernel=True)
    runner = GreedyRunner(
        fast,
        prefill_chunk=512,
        use_graph=True,
        compile_step=args.compile,
        verify_widths=tuple(k + 1 for k in ks),
        fused=FusedSettings(use_pdl=True) if args.fused else None,
    )
    if runner.verify_fallbacks:
        print(f"unfused verify widths: {runner.verify_fallbacks}")
    assistant = MtpAssistant.from_transformers(assistant_model, fast)
    prompt = list(range(1000, 2024))
    first = runner.prefill(prompt).tolist()
    context = prompt + first
    decode = wall_ms(lambda: runner.decode_steps(1))
    print(f"decode step {decode:.3f} ms ({1e3 / decode:.0f} tok/s)")
    for k in ks:
        drafter = AssistantDrafter(assistant, k, use_graph=True, compile_step=args.compile_draft)
        runner.prefill(prompt)
        verify = wall_ms(lambda k=k: runner.verify([first[0]] + [1] * k, len(prompt)))
        propose = wall_ms(lambda d=drafter, k=k: d.propose(context, k))
        replay = wall_ms(drafter._draft)
        runner.prefill(prompt)
        eager = AssistantDrafter(assistant, k, use_graph=False).propose(context, k)
        same = drafter.propose(context, k) == eager
        speculator = AssistantSpeculator(runner, assistant, k, compile_step=args.compile_draft)
        speculator.start(prompt, 512)
        one_graph = wall_ms(lambda s=speculator: s.run_steps(1))
        tokens = 1 + sum(ACCEPTANCE[:k])
        host_rate = tokens / (verify + propose) * 1e3
        graph_rate = tokens / one_graph * 1e3
        print(
            f"K={k}: verify {verify:.3f} ms, proposal {propose:.3f} ms (graph replay "
            f"{replay:.3f} ms; drafts equal eager: {same}), one-graph step {one_graph:.3f} ms; "
            f"{tokens:.2f} tokens/step at the quoted acceptance -> host loop {host_rate:.0f} "
            f"tok/s ({host_rate * decode / 1e3:.2f}x decode), one graph {graph_rate:.0f} tok/s "
            f"({graph_rate * decode / 1e3:.2f}x)"
        )


if __name__ == "__main__":
    main()
