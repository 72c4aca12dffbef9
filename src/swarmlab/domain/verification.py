"""Verification policy: when a result is re-run, and how the re-run decides its verdict.

A result is valid when its re-run on the private prompt set reproduces the reported score within
a relative tolerance, stays within the guardrail cap, and (when required) decodes greedily exactly
as the reference does. The first check that fails is named in the verdict, so the author knows
what to fix. Re-running every claim wastes scarce GPUs; ``rerun: top_k`` re-runs only claims
that would enter the top K, and everything else is settled without a re-run so nothing stays
pending forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Check(StrEnum):
    """The checks a re-run must pass, in the order they are applied."""

    rerun = "rerun"
    identity = "identity"
    guardrail = "guardrail"
    tolerance = "tolerance"


class VerdictStatus(StrEnum):
    pending = "pending"
    valid = "valid"
    invalid = "invalid"


@dataclass(frozen=True)
class Policy:
    """The challenge's verification settings, as the rules need them."""

    tolerance: float = 0.05
    guardrail_cap: float | None = None
    require_identity: bool = True
    rerun: Literal["all", "top_k"] = "top_k"
    top_k: int = 5
    higher_is_better: bool = True


@dataclass(frozen=True)
class Rerun:
    """What the verification job measured on the private set.

    ``score`` is ``None`` when the re-run produced no score (the entry failed to serve);
    ``first_divergence`` describes where greedy decoding first left the reference, if it did.
    """

    score: float | None
    guardrail: float | None = None
    identical: bool = True
    first_divergence: str | None = None


@dataclass(frozen=True)
class Verdict:
    """A decision with its numbers; ``failed`` is ``None`` for a valid verdict."""

    status: VerdictStatus
    failed: Check | None
    reason: str
    deviation: float | None = None


def relative_deviation(reported: float, measured: float) -> float:
    """``|measured - reported| / |reported|``; infinite when nothing sensible was reported."""
    if reported == 0:
        return 0.0 if measured == 0 else float("inf")
    return abs(measured - reported) / abs(reported)


def _invalid(check: Check, reason: str, deviation: float | None = None) -> Verdict:
    return Verdict(VerdictStatus.invalid, check, reason, deviation)


def decide(policy: Policy, reported: float, rerun: Rerun) -> Verdict:
    """Judge a re-run against the reported score; the first failed check decides.

    Correctness comes first: a server that decodes differently from the reference is invalid
    whatever its speed, so identity is checked before the guardrail and the tolerance.
    """
    if rerun.score is None:
        return _invalid(Check.rerun, "the re-run produced no score: the entry failed to serve")
    deviation = relative_deviation(reported, rerun.score)
    if policy.require_identity and not rerun.identical:
        where = rerun.first_divergence or "position unknown"
        return _invalid(
            Check.identity, f"greedy decode differs from the reference: {where}", deviation
        )
    cap = policy.guardrail_cap
    if cap is not None and (rerun.guardrail is None or rerun.guardrail > cap):
        shown = "no value" if rerun.guardrail is None else f"{rerun.guardrail:g}"
        return _invalid(Check.guardrail, f"guardrail {shown} over its cap {cap:g}", deviation)
    if deviation > policy.tolerance:
        return _invalid(
            Check.tolerance,
            f"re-run scored {rerun.score:g} against {reported:g} reported: "
            f"{deviation:.1%} apart, over the {policy.tolerance:.0%} tolerance",
            deviation,
        )
    return Verdict(
        VerdictStatus.valid,
        None,
        f"re-run scored {rerun.score:g}, {deviation:.1%} from the {reported:g} reported",
        deviation,
    )


def enters_top_k(score: float, ranked_scores: Iterable[float], policy: Policy) -> bool:
    """Whether a new claim would rank in the top K of the current board.

    Ties go to the earlier result, so an equal score ranks below those already posted.
    """

    def at_least_as_good(other: float) -> bool:
        return other >= score if policy.higher_is_better else other <= score

    ahead = sum(1 for other in ranked_scores if at_least_as_good(other))
    return ahead < policy.top_k


def needs_rerun(score: float, ranked_scores: Iterable[float], policy: Policy) -> bool:
    """Whether a measured result is re-run on the private set under this policy."""
    return policy.rerun == "all" or enters_top_k(score, ranked_scores, policy)


def accept_measured(policy: Policy, score: float, guardrail: float | None) -> Verdict:
    """Settle a measured result that is not re-run (outside the top K) on its own job's numbers.

    The hub measured it, so only the guardrail is checked; this keeps results below the top K
    from staying pending forever without spending a re-run on them.
    """
    cap = policy.guardrail_cap
    if cap is not None and (guardrail is None or guardrail > cap):
        shown = "no value" if guardrail is None else f"{guardrail:g}"
        return _invalid(Check.guardrail, f"guardrail {shown} over its cap {cap:g}")
    return Verdict(
        VerdictStatus.valid, None, f"measured {score:g} by the hub; outside the top K, not re-run"
    )


def degradation_verdict(policy: Policy, rerun: Rerun) -> Verdict | None:
    """The daily guardrail re-score: an invalid verdict when the cap is now exceeded, else None."""
    cap = policy.guardrail_cap
    if cap is None or (rerun.guardrail is not None and rerun.guardrail <= cap):
        return None
    shown = "no value" if rerun.guardrail is None else f"{rerun.guardrail:g}"
    return _invalid(Check.guardrail, f"degradation check: guardrail {shown} over its cap {cap:g}")
