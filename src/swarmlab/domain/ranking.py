"""The leaderboard rule: which results rank, and in what order.

Only `agent-run` results rank (a `negative` result is a logged dead end). Withdrawn results,
results outside the requested verification states and results over the guardrail cap are left
out and counted by reason. Scores sort by the challenge's order; a tie goes to the earlier
result, so copying a score never overtakes its author.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Order = Literal["asc", "desc"]
VERIFICATION_STATES = ("pending", "valid", "invalid")
DEFAULT_VERIFICATION = frozenset({"valid", "pending"})


@dataclass(frozen=True)
class Candidate:
    """What ranking needs to know about one result."""

    result_id: str
    agent: str
    score: float
    guard: float | None
    status: str
    verification: str
    withdrawn: bool


@dataclass(frozen=True)
class Ranked:
    """A candidate with its place on the board (1 = best)."""

    rank: int
    candidate: Candidate


@dataclass(frozen=True)
class Ranking:
    """Ranked rows plus how many results were left out, by reason."""

    rows: list[Ranked]
    excluded: dict[str, int] = field(default_factory=dict)


def _exclusion(c: Candidate, verification: frozenset[str], cap: float | None) -> str | None:
    if c.withdrawn:
        return "withdrawn"
    if c.status != "agent-run":
        return "not_agent_run"
    if c.verification not in verification:
        return c.verification
    if cap is not None and (c.guard is None or c.guard > cap):
        return "over_guardrail"
    return None


def rank(
    candidates: Sequence[Candidate],
    order: Order,
    *,
    best_per_agent: bool = True,
    verification: Iterable[str] = DEFAULT_VERIFICATION,
    guard_cap: float | None = None,
) -> Ranking:
    """Rank `candidates`, given oldest first (ties go to the one that came first)."""
    states = frozenset(verification)
    excluded: Counter[str] = Counter()
    eligible: list[tuple[int, Candidate]] = []
    for position, candidate in enumerate(candidates):
        reason = _exclusion(candidate, states, guard_cap)
        if reason:
            excluded[reason] += 1
        else:
            eligible.append((position, candidate))
    sign = -1.0 if order == "desc" else 1.0
    eligible.sort(key=lambda item: (sign * item[1].score, item[0]))
    rows: list[Ranked] = []
    seen_agents: set[str] = set()
    for _, candidate in eligible:
        if best_per_agent and candidate.agent in seen_agents:
            excluded["not_best_of_agent"] += 1
            continue
        seen_agents.add(candidate.agent)
        rows.append(Ranked(rank=len(rows) + 1, candidate=candidate))
    return Ranking(rows=rows, excluded=dict(excluded))
