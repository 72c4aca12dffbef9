"""Verdict policy: tolerance, guardrail cap, greedy identity, and which claims are re-run."""

from __future__ import annotations

import math

import pytest

from swarmlab.domain.verification import (
    Check,
    Policy,
    Rerun,
    VerdictStatus,
    accept_measured,
    decide,
    degradation_verdict,
    enters_top_k,
    needs_rerun,
    relative_deviation,
)

POLICY = Policy(tolerance=0.05, guardrail_cap=2.415, require_identity=True)


def test_within_tolerance_cap_and_identical_is_valid() -> None:
    verdict = decide(POLICY, 100.0, Rerun(score=96.0, guardrail=2.3))
    assert verdict.status is VerdictStatus.valid
    assert verdict.failed is None
    assert verdict.deviation == pytest.approx(0.04)


def test_tolerance_edge_is_inclusive() -> None:
    assert decide(POLICY, 100.0, Rerun(score=105.0, guardrail=2.3)).status is VerdictStatus.valid


def test_overclaim_fails_tolerance_with_both_numbers() -> None:
    verdict = decide(POLICY, 200.0, Rerun(score=100.0, guardrail=2.3))
    assert (verdict.status, verdict.failed) == (VerdictStatus.invalid, Check.tolerance)
    assert "100" in verdict.reason and "200" in verdict.reason and "50.0%" in verdict.reason


def test_guardrail_over_cap_fails() -> None:
    verdict = decide(POLICY, 100.0, Rerun(score=100.0, guardrail=2.5))
    assert verdict.failed is Check.guardrail
    assert "2.5" in verdict.reason and "2.415" in verdict.reason


def test_missing_guardrail_fails_when_a_cap_exists() -> None:
    assert decide(POLICY, 100.0, Rerun(score=100.0)).failed is Check.guardrail


def test_divergence_fails_identity_and_names_it() -> None:
    rerun = Rerun(
        score=100.0, guardrail=2.3, identical=False, first_divergence="prompt 3, token 17"
    )
    verdict = decide(POLICY, 100.0, rerun)
    assert verdict.failed is Check.identity
    assert "prompt 3, token 17" in verdict.reason


def test_identity_not_required_ignores_divergence() -> None:
    policy = Policy(require_identity=False)
    assert decide(policy, 10.0, Rerun(score=10.0, identical=False)).status is VerdictStatus.valid


def test_failed_rerun_is_invalid() -> None:
    assert decide(POLICY, 100.0, Rerun(score=None)).failed is Check.rerun


def test_identity_then_guardrail_then_tolerance() -> None:
    everything_wrong = Rerun(score=10.0, guardrail=9.0, identical=False)
    assert decide(POLICY, 100.0, everything_wrong).failed is Check.identity
    assert decide(POLICY, 100.0, Rerun(score=10.0, guardrail=9.0)).failed is Check.guardrail


def test_relative_deviation_of_zero_report() -> None:
    assert relative_deviation(0.0, 0.0) == 0.0
    assert math.isinf(relative_deviation(0.0, 1.0))


def test_top_k_counts_ties_as_ahead() -> None:
    board = [300.0, 200.0, 100.0]
    policy = Policy(top_k=3)
    assert enters_top_k(150.0, board, policy)
    assert not enters_top_k(100.0, board, policy)
    assert enters_top_k(100.0, board, Policy(top_k=4))


def test_top_k_for_lower_is_better() -> None:
    policy = Policy(top_k=1, higher_is_better=False)
    assert enters_top_k(1.0, [2.0], policy)
    assert not enters_top_k(3.0, [2.0], policy)


def test_rerun_all_ignores_rank() -> None:
    assert needs_rerun(1.0, [5.0] * 10, Policy(rerun="all", top_k=1))
    assert not needs_rerun(1.0, [5.0] * 10, Policy(rerun="top_k", top_k=1))


def test_measured_result_outside_top_k_is_settled_on_its_guardrail() -> None:
    assert accept_measured(POLICY, 90.0, 2.3).status is VerdictStatus.valid
    failed = accept_measured(POLICY, 90.0, 3.0)
    assert (failed.status, failed.failed) == (VerdictStatus.invalid, Check.guardrail)


def test_degradation_flags_only_a_guardrail_over_the_cap() -> None:
    assert degradation_verdict(POLICY, Rerun(score=1.0, guardrail=2.0)) is None
    verdict = degradation_verdict(POLICY, Rerun(score=1.0, guardrail=2.5))
    assert verdict is not None and "degradation check" in verdict.reason
    assert degradation_verdict(Policy(guardrail_cap=None), Rerun(score=1.0)) is None
