"""Speculative decoding with a draft model, one CUDA graph per step.

`speculative.py` drives each speculative step from the host: K captured draft steps with a host
read after each, one captured verification, acceptance in Python. Here the whole step is one
captured body, replayed with no host read at all:

1. the draft decodes K tokens: a width-2 step feeds [previous, pending] at [p-1, p] (p is the
   pending token's position), then K-1 width-1 steps feed each draft back;
2. the target verifies [pending, drafts] at p..p+K in one width-(K+1) forward;
3. on the device: the accepted count is the length of the prefix where drafts equal the
   target's greedy tokens; the target's tokens up to and including the first disagreement
   (its correction) go into a history buffer, cut at the first stop id or at `max_tokens`;
   positions advance by the tokens kept; the last kept token becomes the next pending one.

Why the draft's first step is two tokens wide: after a rejection the draft has already seen
every accepted token (it fed them as its own drafts), but when all K drafts are accepted the
last one was never fed. Feeding the token before the pending one again, at its own position,
covers that case; in every other case it rewrites the same key and value at the same position.

Rejected drafts need no rollback in either cache: both are addressed by position, a rejected
entry carries a future position (masked until rewritten), and each sliding ring holds at least
window + K + 1 slots, so no step overwrites a position a later query can still see
(`kv_cache.py`).

Once a request is finished (stop id or `max_tokens`), further replays still compute but keep
nothing: positions, history and counters stay put. So the host can replay several steps
between reads, and the positions a step touches never pass prompt + max_tokens + K.
The output equals the target's plain greedy decoding token for token.

`LookupSpeculator` is the same step with prompt lookup drafting on the device instead of a
draft model: the n-gram search over the text so far is a few fixed-shape tensor operations
(`lookup_drafts`), so the prompt-lookup step is one captured body too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import (
    DEFAULT_SYNC_EVERY,
    CapturedStep,
    EmptyPromptError,
    GreedyRunner,
)
from swarmlab.engine.speculative import NgramDrafter, SpeculativeStats, check_draft_vocabulary


class SpeculatorSetupError(ValueError):
    """The target and draft runners cannot run a captured speculative step as built."""


class GraphSpeculator:
    """Greedy decoding of `target`, K tokens drafted by `draft` per step, the whole step captured.

    Both runners keep their own caches and prefill; the speculator owns the step's state
    (pending token, its position, the history of produced tokens, acceptance counters) in
    device buffers that the captured step reads and updates in place.
    """

    def __init__(
        self,
        target: GreedyRunner,
        draft: GreedyRunner,
        k: int,
        use_graph: bool = True,
        sync_every: int = DEFAULT_SYNC_EVERY,
    ) -> None:
        _check_pair(target, draft, k)
        self.target, self.draft, self.k = target, draft, k
        self.sync_every = max(1, sync_every)
        device = target.model.device
        # The target's fused verify step when it decodes fused (and can take width K+1).
        self._target_forward = target.verify_forward(k + 1)
        self._draft_forward = draft.step_forward

        def zeros(size: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
            return torch.zeros(size, dtype=dtype, device=device)

        self.pending, self.previous, self.count, self.limit = (zeros(1) for _ in range(4))
        # Position 1 during capture: the draft's first step also feeds position - 1.
        self.position = torch.ones(1, dtype=torch.long, device=device)
        self.done = torch.ones(1, dtype=torch.bool, device=device)
        self.history = zeros(target.model.cache.max_len + k + 1)
        self.stop_mask = zeros(target.model.shape.vocab_size, torch.bool)
        self.steps_taken, self.accepted = zeros(1), zeros(1)
        self.accepted_at = zeros(k)
        self._offsets = torch.arange(k + 1, device=device)
        self._pair = torch.tensor([-1, 0], device=device)
        # Captured before any request: the capture's warm-up runs write into both caches.
        with torch.inference_mode():
            self._step = CapturedStep(self._body, device, use_graph)
        target.model.cache.reset()
        draft.model.cache.reset()

    @property
    def max_len(self) -> int:
        """Positions a request may use (prompt plus new tokens); K more stay reserved."""
        shortest = min(self.target.model.cache.max_len, self.draft.model.cache.max_len)
        return shortest - self.k

    def _body(self) -> None:
        drafts = self._draft_tokens()
        positions = self.position + self._offsets
        verified = self._target_forward(torch.cat((self.pending, drafts)), positions)
        self._accept(drafts, verified)

    def _draft_tokens(self) -> torch.Tensor:
        """K greedy draft tokens after the pending one ([K], on device)."""
        tokens = torch.cat((self.previous, self.pending))
        token = self._draft_forward(tokens, self.position + self._pair)[1:]
        drafted = [token]
        for offset in range(1, self.k):
            token = self._draft_forward(token, self.position + offset)
            drafted.append(token)
        return torch.cat(drafted)

    def _accept(self, drafts: torch.Tensor, verified: torch.Tensor) -> None:
        """Keep the target's tokens through its first disagreement with the drafts, stopping
        at a stop id or the token limit; advance the state. Fixed shapes, no host read."""
        live = ~self.done
        accepted = ((drafts != verified[: self.k]).cumsum(0) == 0).sum(0, keepdim=True)
        offered = self._offsets <= accepted
        stops = self.stop_mask[verified] & offered
        before_stop = (stops.cumsum(0) == 0).sum(0, keepdim=True)
        kept = torch.minimum(torch.minimum(before_stop, accepted) + 1, self.limit - self.count)
        kept = kept * live
        self.history.index_copy_(0, self.count + self._offsets, verified)
        sequence = torch.cat((self.previous, self.pending, verified))
        self.previous.copy_(sequence.gather(0, kept))
        self.pending.copy_(sequence.gather(0, kept + 1))
        self.position.add_(kept)
        self.count.add_(kept)
        self.done.logical_or_((before_stop <= accepted) | (self.count >= self.limit))
        self.steps_taken.add_(live.long())
        self.accepted.add_(accepted * live)
        self.accepted_at.add_((self._offsets[: self.k] < accepted) * live)

    @torch.inference_mode()
    def run_steps(self, steps: int) -> None:
        """Replay the captured step `steps` times with no host read (benchmarks time this)."""
        for _ in range(steps):
            self._step()

    def _prefill_draft(self, prompt: list[int]) -> None:
        self.draft.prefill(prompt)

    @torch.inference_mode()
    def start(self, prompt: list[int], max_tokens: int, stop_ids: Iterable[int] = ()) -> None:
        """Prefill both models and set the step's state for a new request."""
        if not prompt:
            raise EmptyPromptError("prompt_ids must hold at least one token")
        first = self.target.prefill(prompt)
        self._prefill_draft(prompt)
        vocab = self.stop_mask.shape[0]
        stops = [token for token in set(stop_ids) if 0 <= token < vocab]
        self.stop_mask.fill_(False)
        self.stop_mask[torch.tensor(stops, dtype=torch.long, device=self.stop_mask.device)] = True
        self.pending.copy_(first)
        self.previous.fill_(prompt[-1])
        self.position.fill_(len(prompt))
        self.history[:1].copy_(first)
        self.count.fill_(1)
        self.limit.fill_(max_tokens)
        self.done.copy_(self.stop_mask[first] | (self.count >= self.limit))
        for counter in (self.steps_taken, self.accepted, self.accepted_at):
            counter.zero_()

    @torch.inference_mode()
    def generate(
        self, prompt: list[int], max_tokens: int, stop_ids: Iterable[int] = ()
    ) -> tuple[list[int], SpeculativeStats]:
        """The target's greedy continuation (at most `max_tokens` ids, ending after the first
        stop id) and the acceptance counts."""
        if not prompt:
            raise EmptyPromptError("prompt_ids must hold at least one token")
        if max_tokens < 1:
            return [], SpeculativeStats(accepted_at=[0] * self.k)
        end = len(prompt) + max_tokens + self.k
        for runner in (self.target, self.draft):
            runner.model.cache.check_fits(end)
        self.start(prompt, max_tokens, stop_ids)
        produced, done = self._progress()
        while not done:
            # Each live step keeps 1..K+1 tokens: this many steps cannot run past max_tokens.
            remaining = max_tokens - produced
            self.run_steps(min(self.sync_every, -(-remaining // (self.k + 1))))
            produced, done = self._progress()
        return self.history[:produced].tolist(), self.stats()

    def _progress(self) -> tuple[int, bool]:
        count, done = torch.cat((self.count, self.done.long())).tolist()
        return count, bool(done)

    def stats(self) -> SpeculativeStats:
        """Acceptance counts of the current (or last) request."""
        steps, accepted = int(self.steps_taken.item()), int(self.accepted.item())
        return SpeculativeStats(
            steps=steps,
            drafted=steps * self.k,
            accepted=accepted,
            accepted_at=self.accepted_at.tolist(),
        )


def lookup_drafts(
    tokens: torch.Tensor, last: torch.Tensor, k: int, lengths: tuple[int, ...]
) -> torch.Tensor:
    """Prompt lookup on the device: `NgramDrafter.propose(tokens[: last + 1], k)`, with fixed
    shapes and no host read.

    `tokens` holds the token at each position (only positions <= `last`, a one-element tensor,
    are read); `lengths` are the n-gram lengths to try, longest first. For each n the latest
    start s <= last - n whose n tokens equal the last n is found; the first n that has one
    wins, and the drafts are the k tokens after its match, the last context token repeating
    where they run out (no match anywhere: the last token k times).
    """
    starts = torch.arange(tokens.shape[0] - max(lengths), device=tokens.device)
    after = []
    for n in lengths:
        match = starts <= last - n
        for j in range(n):
            tail = tokens.gather(0, (last - n + 1 + j).clamp(min=0))
            match = match & (tokens[j : j + starts.shape[0]] == tail)
        latest = torch.where(match, starts, -1).amax(0, keepdim=True)
        after.append(torch.where(latest >= 0, latest + n, -1))
    candidates = torch.cat(after)
    found = candidates >= 0
    first = candidates.gather(0, found.long().argmax(0, keepdim=True))
    begin = torch.where(found.any(0, keepdim=True), first, last)
    offsets = torch.arange(k, device=tokens.device)
    return tokens.gather(0, torch.minimum(begin + offsets, last))


class LookupSpeculator(GraphSpeculator):
    """The one-graph speculative step with prompt lookup (`NgramDrafter`'s n-gram search, run
    on the device by `lookup_drafts`) as the drafter: search, the target's width-(K+1)
    verification and the acceptance are one captured body, replayed with no host read.

    The speculator keeps the token at every position (the prompt, then each verification's
    tokens written past the pending one; those past the kept ones are rewritten before any
    search reads them). There is no draft model: the base class's draft runner is the target
    itself, so its checks and resets apply to the one cache. `compile_step` compiles the
    search (a few dozen small kernels eagerly) with torch.compile.
    """

    def __init__(
        self,
        target: GreedyRunner,
        k: int,
        use_graph: bool = True,
        sync_every: int = DEFAULT_SYNC_EVERY,
        drafter: NgramDrafter | None = None,
        compile_step: bool = False,
    ) -> None:
        drafter = drafter or NgramDrafter()
        if not 1 <= drafter.min_ngram <= drafter.max_ngram:
            raise SpeculatorSetupError(
                f"n-gram lengths {drafter.min_ngram}..{drafter.max_ngram} are empty; "
                "give 1 <= min_ngram <= max_ngram"
            )
        device = target.model.device
        # Room for every position a step may write, and for the search's shifted views.
        size = target.model.cache.max_len + k + 1 + drafter.max_ngram
        self.tokens = torch.zeros(size, dtype=torch.long, device=device)
        self._lengths = tuple(range(drafter.max_ngram, drafter.min_ngram - 1, -1))
        self._lookup: Callable[..., torch.Tensor] = lookup_drafts
        if compile_step:
            self._lookup = torch.compile(lookup_drafts, dynamic=False)
        super().__init__(target, target, k, use_graph, sync_every)

    def _prefill_draft(self, prompt: list[int]) -> None:
        """No draft model: record the prompt's tokens for the search."""
        ids = torch.tensor(prompt, dtype=torch.long, device=self.tokens.device)
        self.tokens[: len(prompt)].copy_(ids)

    @torch.inference_mode()
    def start(self, prompt: list[int], max_tokens: int, stop_ids: Iterable[int] = ()) -> None:
        super().start(prompt, max_tokens, stop_ids)
        self.tokens[len(prompt) : len(prompt) + 1].copy_(self.pending)

    def _draft_tokens(self) -> torch.Tensor:
        return self._lookup(self.tokens, self.position, self.k, self._lengths)

    def _accept(self, drafts: torch.Tensor, verified: torch.Tensor) -> None:
        # The target's tokens go after the pending one; those past the kept ones are
        # rewritten by a later step before a search can read them.
        self.tokens.index_copy_(0, self.position + 1 + self._offsets, verified)
        super()._accept(drafts, verified)


def _check_pair(target: GreedyRunner, draft: GreedyRunner, k: int) -> None:
    if k < 1:
        raise SpeculatorSetupError(f"K must be at least 1, got {k}")
    if target.model.device != draft.model.device:
        raise SpeculatorSetupError(
            f"the draft model is on {draft.model.device} but the target on "
            f"{target.model.device}; load both on the same device"
        )
    check_draft_vocabulary(target, draft)
    for role, runner in (("target", target), ("draft", draft)):
        _check_ring(runner.model, k, role)


def _check_ring(model: FastDecoder, k: int, role: str) -> None:
    """A step may write K+1 positions past the last accepted one; the sliding ring must hold
    them plus a window, or a rejected suffix would overwrite a position still visible."""
    cache = model.cache
    if cache.ring < min(cache.max_len, cache.window + k + 1):
        raise SpeculatorSetupError(
            f"the {role} model's sliding cache holds {cache.ring} slots, fewer than its window "
            f"({cache.window}) + K + 1 = {cache.window + k + 1}; build its FastDecoder with "
            f"max_step_tokens >= {k + 1}"
        )
