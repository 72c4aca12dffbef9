"""PPL: the endpoint's perplexity on fixed ground-truth continuations (the quality guardrail).

Each record's prompt is context + target, sent once with `max_tokens: 1, prompt_logprobs: 1`;
`choices[0].prompt_logprobs` is aligned with the prompt positions, each entry mapping token id
(as a string) to `{"logprob": float}` and holding the actual token. The record's NLL is the sum
of -logprob over the target positions; the aggregate is token-weighted:
PPL = exp(sum of NLL / sum of target tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from swarmlab.bench.artifacts import JsonlWriter, write_json
from swarmlab.bench.client import require
from swarmlab.bench.errors import EndpointError
from swarmlab.bench.inputs import PplRecord
from swarmlab.bench.stage import StageContext

PPL_FILE = "ppl_results.jsonl"
PPL_SUMMARY_FILE = "ppl_summary.json"
FIELD = "choices[0].prompt_logprobs"


def ppl_payload(model: str, prompt_ids: Sequence[int]) -> dict[str, Any]:
    """One scoring request: prompt log-probabilities, a single generated token."""
    return {
        "model": model,
        "prompt": list(prompt_ids),
        "max_tokens": 1,
        "temperature": 0.0,
        "stream": False,
        "add_special_tokens": False,
        "prompt_logprobs": 1,
    }


def run_ppl(
    ctx: StageContext, records: Sequence[PplRecord], limit: int | None = None
) -> dict[str, Any]:
    """Score every record; write ppl_results.jsonl and ppl_summary.json."""
    chosen = list(records)[:limit]
    nll_sums, counts = [], []
    with JsonlWriter(ctx.state_dir / PPL_FILE) as out:
        for done, record in enumerate(chosen, start=1):
            ctx.checkpoint()
            prompt = [*record.context_token_ids, *record.target_token_ids]
            body = ctx.client.post("/v1/completions", ppl_payload(ctx.client.model, prompt)).body
            nll = target_nll(require(body, FIELD), prompt, len(record.context_token_ids))
            count = len(record.target_token_ids)
            nll_sums.append(nll)
            counts.append(count)
            out.write(
                {
                    "id": record.id,
                    "num_context_tokens": len(record.context_token_ids),
                    "num_target_tokens": count,
                    "nll_sum": nll,
                    "ppl": math.exp(nll / count),
                }
            )
            ctx.progress(done, len(chosen))
    summary = {
        "ppl": aggregate_ppl(nll_sums, counts),
        "ppl_num_tokens": sum(counts),
        "ppl_num_records": len(counts),
        "ppl_nll_sum": math.fsum(nll_sums),
    }
    write_json(ctx.state_dir / PPL_SUMMARY_FILE, summary)
    return summary


def target_nll(prompt_logprobs: Any, prompt_ids: Sequence[int], start: int) -> float:
    """Sum of -logprob of the actual tokens at positions start..end of the prompt."""
    if not isinstance(prompt_logprobs, list) or len(prompt_logprobs) != len(prompt_ids):
        size = len(prompt_logprobs) if isinstance(prompt_logprobs, list) else "not a list"
        raise EndpointError(
            f"`{FIELD}` must be a list with one entry per prompt token "
            f"({len(prompt_ids)}), got {size}"
        )
    total = 0.0
    for position in range(start, len(prompt_ids)):
        entry = prompt_logprobs[position]
        token = str(prompt_ids[position])
        found = entry.get(token) if isinstance(entry, dict) else None
        logprob = _logprob(found.get("logprob") if isinstance(found, dict) else found)
        if logprob is None:
            raise EndpointError(
                f"`{FIELD}[{position}]` has no log-probability for the actual token {token}: "
                'each entry must map the prompt token (as a string) to {"logprob": float <= 0}'
            )
        total -= logprob
    return total


def _logprob(value: Any) -> float | None:
    """The value when it is a real number <= 0 (a tiny rounding error tolerated), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if not math.isnan(value) and value <= 1e-6 else None


def aggregate_ppl(nll_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """Token-weighted perplexity: exp(sum NLL / sum tokens)."""
    tokens = sum(token_counts)
    if tokens <= 0:
        raise ValueError("no scored tokens")
    return math.exp(math.fsum(nll_sums) / tokens)
