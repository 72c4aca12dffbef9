"""How fast is the reference backend, and where does its decode time go?

Times the reference backend in-process (no HTTP) on a checkpoint (default: the tiny model,
built into a temporary folder), over `--repeats` runs after one warm-up:

1. `decode`: greedy generation of `--new-tokens` tokens with no stop ids, after a prompt of
   `--prompt-len` tokens; tok/s = new tokens / wall time (prefill included, as a server's
   single-stream TPS counts it);
2. `step floor`: one bare model forward of one token against a warm KV cache, the floor of a
   decode step for this implementation; decode's time per token over this floor is the
   reference loop's own overhead (argmax, host sync, tensor building);
3. `prompt_logprobs`: teacher-forced scoring of a `--score-len`-token prompt in 512-token
   chunks, in prompt tokens/s.

It also reports the CI-sized harness workload it implies: 16 prompts x 64 tokens.

Usage: python benchmarks/engine_reference.py [--model DIR] [--device cpu] [--dtype float32]
       [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from swarmlab.engine.backend import BackendOptions
from swarmlab.engine.reference import ReferenceBackend
from swarmlab.engine.tiny import make_tiny


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` runs, after one warm-up run."""
    fn()
    samples = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def step_floor(backend: ReferenceBackend, prompt: list[int], repeats: int) -> float:
    """Median time of one single-token forward against a cache holding `prompt`."""
    cache = backend._new_cache()
    with torch.inference_mode():
        backend._logits(prompt, cache, logits_to_keep=1)
        samples = []
        for position in range(repeats):
            start = time.perf_counter()
            backend._logits([prompt[position % len(prompt)]], cache, logits_to_keep=1)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="checkpoint folder (default: build the tiny one)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--score-len", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model or make_tiny(Path(scratch) / "tiny")
        backend = ReferenceBackend.from_options(BackendOptions(model_dir, args.device, args.dtype))
    vocab = backend.model.config.get_text_config().vocab_size
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(6, vocab, (args.prompt_len,), generator=generator).tolist()
    scored = torch.randint(6, vocab, (args.score_len,), generator=generator).tolist()

    decode_s = timed(lambda: backend.generate(prompt, args.new_tokens, None), args.repeats)
    floor_s = step_floor(backend, prompt, max(args.repeats * 10, 50))
    score_s = timed(lambda: backend.prompt_logprobs(scored), args.repeats)

    per_token = decode_s / args.new_tokens
    print(
        f"model {model_dir.name}, device {args.device}, dtype {args.dtype}, torch threads {torch.get_num_threads()}"
    )
    print(
        f"decode          {args.new_tokens / decode_s:8.1f} tok/s  ({per_token * 1e3:.2f} ms/token, prefill of {args.prompt_len} included)"
    )
    print(
        f"step floor      {1 / floor_s:8.1f} tok/s  ({floor_s * 1e3:.2f} ms: one bare forward; loop overhead {(per_token / floor_s - 1) * 100:+.0f}%)"
    )
    print(
        f"prompt_logprobs {args.score_len / score_s:8.1f} prompt tok/s ({args.score_len} tokens in {score_s:.2f} s)"
    )
    print(f"CI speed stage  16 x 64 tokens ~ {16 * 64 * per_token:.1f} s of decoding")


if __name__ == "__main__":
    main()
