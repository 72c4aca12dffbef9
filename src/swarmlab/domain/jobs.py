"""Benchmark job rules: the state machine, leases and attempts, and rolling-window quotas.

Pure functions over plain values, so the hub, the reaper and the tests all apply the same rules.
A job moves ``queued -> running -> completed | error | timed_out | cancelled``. A running job whose
worker went silent (its lease expired) goes back to ``queued`` until it has used its attempts,
so a crashed worker never leaves a job "running" forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job stands."""

    queued = "queued"
    running = "running"
    completed = "completed"
    error = "error"
    timed_out = "timed_out"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the job is over; terminal jobs never change again."""
        return self not in (JobStatus.queued, JobStatus.running)


class JobPurpose(StrEnum):
    """Why a job runs: a participant's own evaluation counts against quota; checks do not."""

    self_eval = "self-eval"
    verify = "verify"
    degradation = "degradation"


_LEGAL: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.cancelled}),
    JobStatus.running: frozenset(
        {
            JobStatus.queued,  # lease lost, attempts left
            JobStatus.completed,
            JobStatus.error,
            JobStatus.timed_out,
            JobStatus.cancelled,
        }
    ),
}


class IllegalTransition(Exception):
    """A job was asked to move to a state it cannot reach from where it is."""

    def __init__(self, current: JobStatus, target: JobStatus) -> None:
        allowed = ", ".join(sorted(_LEGAL.get(current, frozenset()))) or "nothing (it is over)"
        super().__init__(
            f"a {current} job cannot become {target}; from {current} it may become {allowed}"
        )
        self.current = current
        self.target = target


def check_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise IllegalTransition unless ``current -> target`` is a legal move."""
    if target not in _LEGAL.get(current, frozenset()):
        raise IllegalTransition(current, target)


def lease_expiry(now: datetime, lease_s: float) -> datetime:
    """When a lease granted or renewed at ``now`` runs out."""
    return now + timedelta(seconds=lease_s)


def lease_expired(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a running job's worker has been silent past its lease."""
    return expires_at is not None and expires_at <= now


def after_lost_lease(attempts: int, max_attempts: int) -> JobStatus:
    """Where a job goes when its worker lost the lease after ``attempts`` starts.

    It is queued again while it has attempts left, and fails once it has used them all, so a
    submission that kills every worker it lands on cannot loop forever.
    """
    return JobStatus.queued if attempts < max_attempts else JobStatus.error


def past_deadline(started_at: datetime | None, timeout_s: float, now: datetime) -> bool:
    """Whether a running job has exceeded its wall-clock limit."""
    return started_at is not None and now - started_at >= timedelta(seconds=timeout_s)


@dataclass(frozen=True)
class QuotaState:
    """One owner's use of a rolling-window quota at a given moment.

    ``retry_after_s`` is how long until one more job may start: 0 while some are left, ``None``
    when the limit is 0 and no wait would help.
    """

    limit: int
    used: int
    window_s: float
    retry_after_s: float | None

    @property
    def remaining(self) -> int:
        """Jobs the owner may still start now."""
        return max(0, self.limit - self.used)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape the API returns with every job request."""
        return {
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "window_hours": self.window_s / 3600,
            "retry_after_s": self.retry_after_s,
        }


def quota_state(
    starts: Iterable[datetime], limit: int, window: timedelta, now: datetime
) -> QuotaState:
    """Count the starts inside ``(now - window, now]`` and say when the next slot frees up.

    When the owner is at or over the limit, the slot frees once enough of the oldest starts
    leave the window for ``used`` to drop below ``limit``.
    """
    inside = sorted(t for t in starts if now - window < t <= now)
    used = len(inside)
    retry: float | None = 0.0
    if limit == 0:
        retry = None
    elif used >= limit:
        frees_at = inside[used - limit] + window
        retry = max(0.0, (frees_at - now).total_seconds())
    return QuotaState(limit=limit, used=used, window_s=window.total_seconds(), retry_after_s=retry)
