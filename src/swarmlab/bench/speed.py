"""Speed: single-stream throughput on non-streaming chat completions.

What is timed, exactly (docs/harness.md says the same):
- `warmup` requests first, untimed and unrecorded.
- Then the timed requests, one at a time (concurrency 1). A request's latency is the
  `time.perf_counter()` span from just before httpx sends it to the moment its whole body has
  arrived (JSON decoding excluded).
- `duration_s` runs from just before the first timed request is sent to the moment the last
  timed response has arrived; it includes the harness's own work between requests, which is
  reported apart as `harness_gap_s` (duration minus the sum of latencies).
- TPS = generated tokens / duration_s, generated tokens per request being the server's
  `usage.completion_tokens` capped at `output_len`; `total_tps` adds the prompt tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from swarmlab.bench.artifacts import JsonlWriter
from swarmlab.bench.client import optional_text, require
from swarmlab.bench.errors import EndpointError
from swarmlab.bench.inputs import Prompt, cycle
from swarmlab.bench.stage import StageContext

BENCHMARK_FILE = "benchmark.jsonl"


def chat_payload(model: str, prompt: str, output_len: int) -> dict[str, Any]:
    """The timed request: greedy, a fixed output length, end-of-sequence ignored."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": output_len,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": False,
    }


def run_speed(
    ctx: StageContext, prompts: Sequence[Prompt], num_prompts: int, output_len: int, warmup: int
) -> dict[str, Any]:
    """Run warm-up then timed requests; write benchmark.jsonl; return the summary fields."""
    total = warmup + num_prompts
    for done, prompt in enumerate(cycle(prompts, warmup), start=1):
        ctx.checkpoint()
        ctx.client.post(
            "/v1/chat/completions", chat_payload(ctx.client.model, prompt.prompt, output_len)
        )
        ctx.progress(done, total)
    rows: list[dict[str, Any]] = []
    with JsonlWriter(ctx.state_dir / BENCHMARK_FILE) as out:
        first_start = time.perf_counter()
        last_end = first_start
        for index, prompt in enumerate(cycle(prompts, num_prompts)):
            ctx.checkpoint()
            started = time.perf_counter() - first_start
            answer = ctx.client.post(
                "/v1/chat/completions", chat_payload(ctx.client.model, prompt.prompt, output_len)
            )
            last_end = time.perf_counter()
            row = _row(index, prompt, answer.body, answer.seconds, started, output_len)
            out.write(row)
            rows.append(row)
            ctx.progress(warmup + index + 1, total)
    short = [r for r in rows if r["completion_tokens"] < output_len]
    if short:
        ctx.log.info(f"{len(short)} responses carried fewer than {output_len} tokens (ignore_eos?)")
    return speed_metrics(rows, last_end - first_start, output_len, warmup)


def _row(
    index: int,
    prompt: Prompt,
    body: dict[str, Any],
    seconds: float,
    started: float,
    output_len: int,
) -> dict[str, Any]:
    reported = require(body, "usage.completion_tokens")
    prompt_tokens = require(body, "usage.prompt_tokens")
    if not isinstance(reported, int) or not isinstance(prompt_tokens, int):
        raise EndpointError("`usage.completion_tokens` and `usage.prompt_tokens` must be integers")
    return {
        "index": index,
        "id": prompt.id,
        "category": prompt.category,
        "started_s": round(started, 6),
        "latency_s": round(seconds, 6),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": min(reported, output_len),
        "reported_completion_tokens": reported,
        "generated_text": optional_text(body, "message", "content"),
    }


def speed_metrics(
    rows: Sequence[dict[str, Any]], duration_s: float, output_len: int, warmup: int
) -> dict[str, Any]:
    """The speed stage's summary fields from its rows and the timed wall time."""
    latencies = [float(r["latency_s"]) for r in rows]
    generated = sum(int(r["completion_tokens"]) for r in rows)
    prompt_tokens = sum(int(r["prompt_tokens"]) for r in rows)
    tps = generated / duration_s if duration_s > 0 else 0.0
    return {
        "tps": tps,
        "output_tps": tps,
        "total_tps": (generated + prompt_tokens) / duration_s if duration_s > 0 else 0.0,
        "completed": len(rows),
        "duration_s": duration_s,
        "mean_e2e_latency_ms": 1000 * math.fsum(latencies) / len(latencies) if latencies else 0.0,
        "p99_e2e_latency_ms": 1000 * percentile(latencies, 99),
        "num_prompts": len(rows),
        "output_len": output_len,
        "warmup": warmup,
        "total_output_tokens": generated,
        "total_input_tokens": prompt_tokens,
        "harness_gap_s": max(duration_s - math.fsum(latencies), 0.0),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation between ranks (numpy's default)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
