"""Turning a prefill chunk's logits into `prompt_logprobs` entries, for every backend.

Each entry maps the actual next token and the most likely one to their log-probabilities,
which is what the endpoint contract asks for (`prompt_logprobs: 1`). The log-softmax is taken
one chunk at a time, so memory stays bounded by the chunk, not the prompt.
"""

from __future__ import annotations

import torch


def chunk_entries(logits: torch.Tensor, targets: list[int]) -> list[dict[int, float]]:
    """Entries for the positions whose next tokens are `targets` (one logits row each)."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    target_ids = torch.tensor(targets, device=logprobs.device)
    actual = logprobs.gather(1, target_ids[:, None])[:, 0]
    top_values, top_ids = logprobs.max(dim=-1)
    rows = zip(targets, actual.tolist(), top_ids.tolist(), top_values.tolist(), strict=True)
    return [{top: top_lp, target: lp} for target, lp, top, top_lp in rows]
