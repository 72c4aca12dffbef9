"""Speculative decoding with exact greedy verification.

Each step a drafter proposes K tokens after the accepted text; the target model scores the
pending token plus the K proposals in one fixed-width step (captured in a CUDA graph on GPU) and
keeps the longest prefix of proposals that equals its own greedy choice, plus its own next token.
The output is therefore plain greedy decoding of the target, token for token; drafters only
change how many target steps it takes. Drafters: prompt lookup (n-gram matches in the text
so far, no model), a smaller Gemma-4-shaped draft model with its own fast runner, and the
Gemma 4 MTP assistant, which drafts from the target's own state (`fast/assistant.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from swarmlab.engine.fast.runner import EmptyPromptError, GreedyRunner


class DraftMismatchError(ValueError):
    """The draft model cannot draft for this target (another vocabulary, or an MTP assistant
    whose widths or head sizes do not match the target's)."""


class Drafter(Protocol):
    """Proposes exactly `k` tokens to follow `context` (the prompt and every accepted token)."""

    def propose(self, context: list[int], k: int) -> list[int]: ...


@dataclass
class NgramDrafter:
    """Prompt lookup: find the latest earlier occurrence of the context's last n tokens
    (longest n first) and propose what followed it."""

    max_ngram: int = 3
    min_ngram: int = 1

    def propose(self, context: list[int], k: int) -> list[int]:
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if continuation := _lookup(context, n, k):
                return _pad(continuation, k)
        return _pad([context[-1]], k)


def _lookup(context: list[int], n: int, k: int) -> list[int]:
    if len(context) <= n:
        return []
    tail = context[-n:]
    for start in range(len(context) - n - 1, -1, -1):
        if context[start : start + n] == tail:
            return context[start + n : start + n + k]
    return []


def _pad(tokens: list[int], k: int) -> list[int]:
    return (tokens + [tokens[-1]] * k)[:k]


class ModelDrafter:
    """Greedy drafts from a smaller model, whose cache keeps every position still valid.

    After a verification the draft cache holds the last context plus K-1 drafts; those drafts
    that were accepted stay valid, so the next proposal only feeds what the draft has not seen.
    """

    def __init__(self, runner: GreedyRunner) -> None:
        self.runner = runner
        self._base = 0
        self._drafted: list[int] = []
        self._context: list[int] = []

    def propose(self, context: list[int], k: int) -> list[int]:
        valid = self._still_valid(context)
        first = (
            self.runner.extend(context[valid:], valid) if valid else self.runner.prefill(context)
        )
        drafts = self.runner.continue_greedy(first, len(context), k, set())
        self._context, self._base, self._drafted = context, len(context), drafts[:-1]
        return drafts

    def _still_valid(self, context: list[int]) -> int:
        """How many leading positions of the draft cache hold `context`'s tokens."""
        base = self._base
        if not base or context[:base] != self._context:
            return 0
        agreed = 0
        for drafted, actual in zip(self._drafted, context[base:], strict=False):
            if drafted != actual:
                break
            agreed += 1
        return min(base + agreed, len(context) - 1)


@dataclass
class SpeculativeStats:
    """Counts from one speculative generation (acceptance decides the speed-up)."""

    steps: int = 0
    drafted: int = 0
    accepted: int = 0
    accepted_at: list[int] = field(default_factory=list)

    @property
    def tokens_per_step(self) -> float:
        return (self.accepted + self.steps) / self.steps if self.steps else 0.0


def speculative_generate(
    target: GreedyRunner,
    drafter: Drafter,
    prompt: list[int],
    max_tokens: int,
    k: int,
    stop_ids: set[int] | None = None,
) -> tuple[list[int], SpeculativeStats]:
    """Greedy continuation of `prompt` by `target`, K drafted tokens verified per step."""
    if not prompt:
        raise EmptyPromptError("prompt_ids must hold at least one token")
    stats = SpeculativeStats(accepted_at=[0] * k)
    if max_tokens < 1:
        return [], stats
    stops = stop_ids or set()
    target.model.cache.check_fits(len(prompt) + max_tokens + k)
    out = target.prefill(prompt).tolist()
    while len(out) < max_tokens and out[-1] not in stops:
        context = prompt + out
        drafts = drafter.propose(context, k)
        greedy = target.verify([out[-1], *drafts], len(context) - 1)
        accepted = _accepted(drafts, greedy)
        out += [*drafts[:accepted], greedy[accepted]]
        _count(stats, k, accepted)
    return _truncate(out, max_tokens, stops), stats


def _accepted(drafts: list[int], greedy: list[int]) -> int:
    accepted = 0
    while accepted < len(drafts) and drafts[accepted] == greedy[accepted]:
        accepted += 1
    return accepted


def _count(stats: SpeculativeStats, k: int, accepted: int) -> None:
    stats.steps += 1
    stats.drafted += k
    stats.accepted += accepted
    for index in range(accepted):
        stats.accepted_at[index] += 1


def _truncate(tokens: list[int], max_tokens: int, stops: set[int]) -> list[int]:
    tokens = tokens[:max_tokens]
    for index, token in enumerate(tokens):
        if token in stops:
            return tokens[: index + 1]
    return tokens


def check_draft_vocabulary(target: GreedyRunner, draft: GreedyRunner) -> None:
    """Refuse a draft model that does not share the target's vocabulary."""
    ours, theirs = target.model.shape.vocab_size, draft.model.shape.vocab_size
    if ours != theirs:
        raise DraftMismatchError(
            f"draft vocabulary ({theirs}) differs from the target's ({ours}); pick a draft "
            "checkpoint of the same model family, or use --draft ngram"
        )
