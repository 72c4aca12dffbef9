"""Decode capture: greedy token ids for every prompt, the evidence for greedy identity.

Prompts are shuffled with seed 1, chat-templated client side into token ids (see chat.py), and
sent to `/v1/completions` as integer prompts with `add_special_tokens: false`, greedy
(`temperature: 0`), `ignore_eos`, a fixed `max_tokens` and `return_token_ids: true`; the
generated ids come back at `choices[0].token_ids`. Each row of decode_outputs.jsonl carries the
prompt and completion ids with their sha256 (of the comma-joined decimal ids).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from swarmlab.bench.artifacts import JsonlWriter, token_sha256, write_json
from swarmlab.bench.chat import ChatEncoder
from swarmlab.bench.client import EndpointClient, optional_text, require
from swarmlab.bench.errors import EndpointError
from swarmlab.bench.inputs import DECODE_SHUFFLE_SEED, Prompt, decode_order
from swarmlab.bench.stage import StageContext

DECODE_FILE = "decode_outputs.jsonl"
DECODE_SUMMARY_FILE = "decode_summary.json"


def completion_payload(model: str, prompt_ids: Sequence[int], max_tokens: int) -> dict[str, Any]:
    """A greedy token-id completion that returns the generated ids."""
    return {
        "model": model,
        "prompt": list(prompt_ids),
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": False,
        "add_special_tokens": False,
        "ignore_eos": True,
        "return_token_ids": True,
    }


def run_decode(
    ctx: StageContext,
    prompts: Sequence[Prompt],
    encoder: ChatEncoder,
    max_tokens: int,
    limit: int | None = None,
) -> dict[str, Any]:
    """Capture greedy decodes; write decode_outputs.jsonl and decode_summary.json."""
    order = decode_order(prompts)[:limit]
    rows = []
    with JsonlWriter(ctx.state_dir / DECODE_FILE) as out:
        for done, prompt in enumerate(order, start=1):
            ctx.checkpoint()
            row = capture(ctx, prompt, encoder.encode(prompt.prompt), max_tokens)
            out.write(row)
            rows.append(row)
            ctx.progress(done, len(order))
    summary = {
        "num_prompts": len(rows),
        "max_tokens": max_tokens,
        "shuffle_seed": DECODE_SHUFFLE_SEED,
        "tokenizer": encoder.source,
        "num_prompt_tokens": sum(r["num_prompt_tokens"] for r in rows),
        "num_completion_tokens": sum(r["num_completion_tokens"] for r in rows),
        "outputs_fingerprint": fingerprint(rows),
    }
    write_json(ctx.state_dir / DECODE_SUMMARY_FILE, summary)
    return {f"decode_{key}": value for key, value in summary.items()}


def capture(
    ctx: StageContext, prompt: Prompt, prompt_ids: list[int], max_tokens: int
) -> dict[str, Any]:
    """One decode_outputs.jsonl row."""
    completion, text = greedy_completion(ctx.client, prompt_ids, max_tokens)
    return {
        "id": prompt.id,
        "prompt": prompt.prompt,
        "prompt_token_ids": prompt_ids,
        "prompt_token_sha256": token_sha256(prompt_ids),
        "completion_token_ids": completion,
        "completion_token_sha256": token_sha256(completion),
        "generated_text": text,
        "num_prompt_tokens": len(prompt_ids),
        "num_completion_tokens": len(completion),
    }


def greedy_completion(
    client: EndpointClient, prompt_ids: Sequence[int], max_tokens: int
) -> tuple[list[int], str]:
    """The endpoint's greedy continuation of `prompt_ids`: token ids and text."""
    body = client.post("/v1/completions", completion_payload(client.model, prompt_ids, max_tokens))
    completion = require(body.body, "choices[0].token_ids")
    if not isinstance(completion, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in completion
    ):
        raise EndpointError("`choices[0].token_ids` must be a list of integer token ids")
    return completion, optional_text(body.body, "text")


def fingerprint(rows: Sequence[dict[str, Any]]) -> str:
    """One hash over every (id, completion hash) pair, independent of row order."""
    lines = sorted(f"{r['id']}:{r['completion_token_sha256']}" for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
