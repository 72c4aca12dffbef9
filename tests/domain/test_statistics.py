"""Significance of TPS differences: the tests the Fast Gemma participants used, with verdicts."""

from __future__ import annotations

import math

import pytest

from swarmlab.domain.statistics import (
    Verdict,
    compare_tps,
    regularized_incomplete_beta,
    sample_sd,
    student_t_two_sided_p,
    welch_t_test,
    z_test,
)


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (2.0, 10, 0.073388),  # tabulated Student t values
        (2.228139, 10, 0.05),
        (1.0, 1, 0.5),  # Cauchy: P(|T| >= 1) = 1/2
        (12.706205, 1, 0.05),
        (0.0, 5, 1.0),
    ],
)
def test_student_t_two_sided_p_matches_tables(t: float, df: float, p: float) -> None:
    assert student_t_two_sided_p(t, df) == pytest.approx(p, rel=1e-3)


def t_density(x: float, df: float) -> float:
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm) * (1 + x * x / df) ** (-(df + 1) / 2)


@pytest.mark.parametrize(("t", "df"), [(3.0, 2.5), (0.7, 4.2), (2.1, 17.0)])
def test_student_t_matches_integrating_the_density(t: float, df: float) -> None:
    steps = 20_000  # Simpson's rule over [0, t]
    h = t / steps
    inner = sum((4 if i % 2 else 2) * t_density(i * h, df) for i in range(1, steps))
    area = (t_density(0, df) + t_density(t, df) + inner) * h / 3
    assert student_t_two_sided_p(t, df) == pytest.approx(1 - 2 * area, rel=1e-7)


def test_t_approaches_the_normal_for_large_df() -> None:
    assert student_t_two_sided_p(1.959964, 1e7) == pytest.approx(0.05, rel=1e-4)


def test_incomplete_beta_edges_and_symmetry() -> None:
    assert regularized_incomplete_beta(0.0, 2, 3) == 0.0
    assert regularized_incomplete_beta(1.0, 2, 3) == 1.0
    x, a, b = 0.3, 2.5, 4.0
    assert regularized_incomplete_beta(x, a, b) == pytest.approx(
        1 - regularized_incomplete_beta(1 - x, b, a)
    )
    assert regularized_incomplete_beta(0.5, 1, 1) == pytest.approx(0.5)  # uniform CDF


def test_single_runs_use_z_with_sd_times_root_two() -> None:
    result = z_test([300.0], [304.0], noise_sd=1.16)
    assert result.test == "z"
    assert result.statistic == pytest.approx(4.0 / (1.16 * math.sqrt(2)))
    assert result.verdict is Verdict.faster


def test_z_below_two_is_no_real_difference() -> None:
    result = z_test([300.0], [297.5], noise_sd=1.16)
    assert abs(result.statistic) < 2
    assert result.verdict is Verdict.same


def test_small_delta_with_few_repeats_asks_for_more() -> None:
    result = z_test([300.0], [301.5], noise_sd=0.1)  # z is huge, but one run each
    assert result.verdict is Verdict.need_repeats
    assert ">= 3" in result.reason


def test_welch_on_repeats() -> None:
    a = [307.1, 306.0, 308.2, 307.0]
    b = [311.0, 312.2, 310.5, 311.9]
    result = welch_t_test(a, b)
    assert result.test == "welch"
    assert result.df is not None and 3 < result.df < 7
    assert result.statistic > 2
    assert result.p_value < 0.01
    assert result.verdict is Verdict.faster
    assert welch_t_test(b, a).verdict is Verdict.slower


def test_welch_small_delta_with_three_repeats_is_judged() -> None:
    a = [307.0, 307.1, 306.9]
    b = [308.5, 308.6, 308.4]
    assert welch_t_test(a, b).verdict is Verdict.faster


def test_welch_identical_constant_runs() -> None:
    result = welch_t_test([300.0, 300.0, 300.0], [300.0, 300.0, 300.0])
    assert result.statistic == 0
    assert result.verdict is Verdict.same


def test_compare_picks_the_test() -> None:
    assert compare_tps([300.0, 301.0], [305.0, 306.0]).test == "welch"
    single = compare_tps([300.0], [310.0])
    assert single.test == "z"
    assert single.statistic == pytest.approx(10 / (0.0038 * 300 * math.sqrt(2)))


def test_sample_sd_needs_two_runs() -> None:
    assert sample_sd([1.0, 3.0]) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="two runs"):
        sample_sd([1.0])
    with pytest.raises(ValueError, match="positive"):
        z_test([1.0], [2.0], noise_sd=0)
