"""Job state machine, lease and attempt rules, rolling-window quota arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from swarmlab.domain.jobs import (
    IllegalTransition,
    JobStatus,
    after_lost_lease,
    check_transition,
    lease_expired,
    lease_expiry,
    past_deadline,
    quota_state,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("queued", "running"),
        ("queued", "cancelled"),
        ("running", "completed"),
        ("running", "error"),
        ("running", "timed_out"),
        ("running", "cancelled"),
        ("running", "queued"),
    ],
)
def test_legal_transitions_pass(current: str, target: str) -> None:
    check_transition(JobStatus(current), JobStatus(target))


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("queued", "completed"),
        ("queued", "timed_out"),
        ("completed", "running"),
        ("cancelled", "queued"),
        ("error", "completed"),
        ("timed_out", "running"),
    ],
)
def test_illegal_transitions_name_what_is_allowed(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition) as err:
        check_transition(JobStatus(current), JobStatus(target))
    assert f"a {current} job cannot become {target}" in str(err.value)


def test_terminal_states_are_the_four_outcomes() -> None:
    assert {s for s in JobStatus if s.terminal} == {"completed", "error", "timed_out", "cancelled"}


def test_terminal_error_message_says_it_is_over() -> None:
    with pytest.raises(IllegalTransition, match="nothing"):
        check_transition(JobStatus.completed, JobStatus.cancelled)


def test_lease_expires_exactly_after_its_length() -> None:
    expires = lease_expiry(NOW, 60)
    assert not lease_expired(expires, NOW + timedelta(seconds=59))
    assert lease_expired(expires, NOW + timedelta(seconds=60))
    assert not lease_expired(None, NOW)


def test_lost_lease_requeues_until_attempts_are_used() -> None:
    assert after_lost_lease(attempts=1, max_attempts=3) is JobStatus.queued
    assert after_lost_lease(attempts=2, max_attempts=3) is JobStatus.queued
    assert after_lost_lease(attempts=3, max_attempts=3) is JobStatus.error


def test_deadline_counts_from_the_start() -> None:
    assert not past_deadline(None, 10, NOW)
    assert not past_deadline(NOW, 10, NOW + timedelta(seconds=9))
    assert past_deadline(NOW, 10, NOW + timedelta(seconds=10))


def test_quota_with_room_left_has_no_wait() -> None:
    state = quota_state([NOW - timedelta(hours=1)], limit=5, window=DAY, now=NOW)
    assert (state.used, state.remaining, state.retry_after_s) == (1, 4, 0.0)


def test_starts_outside_the_window_do_not_count() -> None:
    starts = [NOW - DAY, NOW - DAY - timedelta(seconds=1), NOW + timedelta(seconds=1)]
    assert quota_state(starts, limit=1, window=DAY, now=NOW).used == 0


def test_full_quota_waits_for_the_oldest_start_to_leave() -> None:
    starts = [NOW - timedelta(hours=h) for h in (20, 10, 5)]
    state = quota_state(starts, limit=3, window=DAY, now=NOW)
    assert state.remaining == 0
    assert state.retry_after_s == timedelta(hours=4).total_seconds()


def test_over_quota_waits_until_enough_starts_leave() -> None:
    # limit lowered to 2 after three starts: two must leave before one more may start
    starts = [NOW - timedelta(hours=h) for h in (20, 10, 5)]
    state = quota_state(starts, limit=2, window=DAY, now=NOW)
    assert state.retry_after_s == timedelta(hours=14).total_seconds()


def test_zero_limit_never_frees() -> None:
    state = quota_state([], limit=0, window=DAY, now=NOW)
    assert state.remaining == 0
    assert state.retry_after_s is None
    assert state.as_dict()["window_hours"] == 24
