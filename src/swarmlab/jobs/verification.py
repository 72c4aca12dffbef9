"""Automatic verification: re-run measured claims on the private prompt set and judge them.

When a result with a submission is posted under `verification.mode: auto`, `Verifier` either
queues a verification job on the private prompts (every result under `rerun: all`, only claims
entering the top K under `rerun: top_k`) or settles it on its measuring job's numbers. When the
job ends, the domain's policy decides and the verdict goes to a `VerdictSink`: the hub's results
service, which records it with compare-and-set (organizer verdicts win) and has `verifier`
announce it on the board. The degradation check re-scores the top K's guardrail on demand or on
a schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select

from swarmlab.challenge.spec import ChallengeSpec, Order
from swarmlab.db import Database
from swarmlab.db.models import Job, Result
from swarmlab.domain.jobs import JobPurpose, JobStatus
from swarmlab.domain.verification import (
    Policy,
    Rerun,
    Verdict,
    accept_measured,
    decide,
    degradation_verdict,
    needs_rerun,
)
from swarmlab.jobs.queue import JobQueue

log = logging.getLogger("swarmlab.jobs")
RANKED = ("valid", "pending")


class VerdictSink(Protocol):
    """Where verdicts go: the hub's results service."""

    def record(self, result_id: str, verdict: Verdict, numbers: dict[str, Any]) -> bool:
        """Record an automatic verdict; False when an organizer's verdict already stands."""


@dataclass(frozen=True)
class ResultView:
    """The parts of a result verification needs."""

    id: str
    author: str
    score: float
    guard: float | None
    submission: str | None
    job: str | None
    provenance: str
    verification: str


def policy_for(spec: ChallengeSpec) -> Policy:
    """The domain policy for a challenge's verification settings."""
    settings = spec.verification
    guard = spec.scoring.guardrail
    return Policy(
        tolerance=settings.tolerance,
        guardrail_cap=None if guard is None else guard.cap,
        require_identity=settings.require_identity,
        rerun=settings.rerun,
        top_k=settings.top_k,
        higher_is_better=spec.scoring.order == Order.desc,
    )


def rerun_from(job: Job, spec: ChallengeSpec) -> Rerun:
    """What a finished verification job measured, in the policy's terms."""
    summary = job.summary or {}
    score = summary.get(spec.scoring.score_field)
    if job.status != JobStatus.completed or not isinstance(score, int | float):
        return Rerun(score=None, identical=False, first_divergence=job.message or None)
    guard_field = spec.scoring.guardrail.field if spec.scoring.guardrail else None
    guard = summary.get(guard_field) if guard_field else None
    identity = summary.get("identity")
    where = summary.get("identity_first_divergence") or "; ".join(
        summary.get("identity_problems") or []
    )
    if identity is None:
        where = "no identity check ran: the private set has no reference decode"
    return Rerun(
        score=float(score),
        guardrail=float(guard) if isinstance(guard, int | float) else None,
        identical=identity == "IDENTICAL",
        first_divergence=where or None,
    )


class Verifier:
    """Queues verification and degradation jobs and turns their outcomes into verdicts."""

    def __init__(
        self, db: Database, spec: ChallengeSpec, queue: JobQueue, sink: VerdictSink
    ) -> None:
        self.db = db
        self.spec = spec
        self.queue = queue
        self.sink = sink
        self.policy = policy_for(spec)
        queue.hooks.finished.append(self.job_finished)

    def _result(self, result_id: str) -> ResultView | None:
        with self.db.read() as session:
            row = session.get(Result, result_id)
            if row is None:
                return None
            return ResultView(
                row.id,
                row.author,
                row.score,
                row.guard,
                row.submission,
                row.job,
                row.provenance,
                row.verification,
            )

    def _board(self, excluding: str) -> Sequence[float]:
        """Each author's best ranked score, as the leaderboard ranks them."""
        best = func.max(Result.score) if self.policy.higher_is_better else func.min(Result.score)
        with self.db.read() as session:
            query = (
                select(best)
                .where(
                    Result.verification.in_(RANKED),
                    Result.withdrawn_at.is_(None),
                    Result.id != excluding,
                )
                .group_by(Result.author)
            )
            return [float(score) for score in session.scalars(query)]

    def result_posted(self, result_id: str) -> dict[str, Any] | None:
        """React to a new result: queue its re-run, settle it, or leave it to organizers.

        Returns the verification job queued, if any.
        """
        result = self._result(result_id)
        if self.spec.verification.mode != "auto" or result is None or not result.submission:
            return None
        if needs_rerun(result.score, self._board(result.id), self.policy):
            return self.queue.enqueue_check(
                result.submission, JobPurpose.verify, self._profile("full"), result.id
            )
        if result.provenance == "measured":
            verdict = accept_measured(self.policy, result.score, result.guard)
            self.sink.record(result.id, verdict, {"job": result.job})
        return None

    def _profile(self, preferred: str) -> str:
        profiles = self.spec.bench.profiles if self.spec.bench else {}
        return preferred if preferred in profiles else next(iter(profiles), preferred)

    def job_finished(self, job: Job) -> None:
        """Judge a finished verification or degradation job (a queue hook)."""
        if job.result_id is None or job.purpose == JobPurpose.self_eval:
            return
        result = self._result(job.result_id)
        if result is None:
            return
        rerun = rerun_from(job, self.spec)
        verdict = (
            decide(self.policy, result.score, rerun)
            if job.purpose == JobPurpose.verify
            else degradation_verdict(self.policy, rerun)
        )
        if verdict is None:
            return
        numbers = {"job": job.id, "rerun": rerun.score, "guardrail": rerun.guardrail}
        try:
            self.sink.record(result.id, verdict, numbers)
        except Exception:  # a verdict that cannot be written must not kill the worker thread
            log.exception("recording the verdict of job %s failed", job.id)

    def degradation_check(self) -> list[dict[str, Any]]:
        """Queue a guardrail re-score on the private set for the top K valid results."""
        k = self.spec.verification.degradation_top_k
        order = Result.score.desc() if self.policy.higher_is_better else Result.score.asc()
        with self.db.read() as session:
            rows = session.execute(
                select(Result.id, Result.submission)
                .where(
                    Result.verification == "valid",
                    Result.withdrawn_at.is_(None),
                    Result.submission.is_not(None),
                )
                .order_by(order, Result.created_at)
                .limit(k)
            ).all()
        return [
            self.queue.enqueue_check(
                row.submission, JobPurpose.degradation, self._profile("ci"), row.id
            )
            for row in rows
        ]
