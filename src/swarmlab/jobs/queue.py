"""The job queue in the hub's database: request with quota, claim with a lease, heartbeat,
finish, cancel, and the reaper that takes jobs back from silent workers.

The database is the single source of truth for job state and the hub its only writer: inline
worker threads call these functions directly, remote workers call them through the worker
API. Every change is one transaction, and every state change goes through the domain's
transition rules.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, not_, select
from sqlalchemy.orm import Session

from swarmlab.challenge.spec import ChallengeSpec
from swarmlab.db import Database, utcnow
from swarmlab.db.models import Account, Job, JobArtifact, JobLogChunk, Submission
from swarmlab.domain.jobs import (
    JobPurpose,
    JobStatus,
    QuotaState,
    after_lost_lease,
    check_transition,
    lease_expired,
    lease_expiry,
    past_deadline,
    quota_state,
)
from swarmlab.jobs.errors import (
    JobStateConflict,
    LeaseLost,
    NotYours,
    QuotaExceeded,
    UnknownRecord,
)

Clock = Callable[[], datetime]
JobHook = Callable[[Job], None]


@dataclass(frozen=True)
class Claim:
    """What a worker needs to run a job it now holds."""

    job: dict[str, Any]
    lease_id: str
    submission_sha256: str
    manifest: dict[str, Any]


@dataclass
class Hooks:
    """Callbacks run after a transaction commits: enqueue to an executor, react to outcomes."""

    queued: list[Callable[[str, str], None]] = field(default_factory=list)
    finished: list[JobHook] = field(default_factory=list)


def new_job_id() -> str:
    """A short random job id, e.g. ``job-3f9c2a7b1d04``."""
    return f"job-{secrets.token_hex(6)}"


def job_json(job: Job) -> dict[str, Any]:
    """The public view of a job: who waits, what runs where, how far it got."""
    return {
        "id": job.id,
        "submission": job.submission_id,
        "owner": job.owner,
        "purpose": job.purpose,
        "prompt_set": job.prompt_set,
        "profile": job.profile,
        "flavor": job.flavor,
        "status": job.status,
        "stage": job.stage,
        "progress": job.progress,
        "worker": job.worker,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "timeout_s": job.timeout_s,
        "lease_s": job.lease_s,
        "result": job.result_id,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "lease_expires_at": job.lease_expires_at.isoformat() if job.lease_expires_at else None,
        "cancel_requested": job.cancel_requested,
        "message": job.message,
        "summary": job.summary,
    }


class JobQueue:
    """Job operations over one hub database, under one challenge's job settings."""

    def __init__(self, db: Database, spec: ChallengeSpec, clock: Clock = utcnow) -> None:
        self.db = db
        self.spec = spec
        self.clock = clock
        self.hooks = Hooks()

    # -- requesting -------------------------------------------------------------------------

    def quota_limit(self, role: str) -> int | None:
        """Self-eval jobs a role may start per window; organizers are not limited."""
        quota = self.spec.jobs.quota
        return {"agent": quota.per_agent, "human": quota.per_human}.get(role)

    def _quota(self, session: Session, owner: str, limit: int) -> QuotaState:
        window = timedelta(hours=self.spec.jobs.quota.window_hours)
        now = self.clock()
        refunded = and_(Job.status == JobStatus.cancelled, Job.started_at.is_(None))
        starts = session.scalars(
            select(Job.created_at).where(
                Job.owner == owner,
                Job.purpose == JobPurpose.self_eval,
                Job.created_at > now - window,
                not_(refunded),
            )
        )
        return quota_state(starts, limit, window, now)

    def quota(self, owner: str, role: str) -> QuotaState | None:
        """The owner's current quota use (``None`` when the role is not limited)."""
        limit = self.quota_limit(role)
        if limit is None:
            return None
        with self.db.read() as session:
            return self._quota(session, owner, limit)

    def _lock_owner(self, session: Session, owner: str) -> None:
        """Serialise one owner's job requests: SQLite's BEGIN IMMEDIATE already does."""
        if not self.db.is_sqlite:
            session.execute(select(Account.handle).where(Account.handle == owner).with_for_update())

    def request(
        self, owner: str, role: str, submission_id: str, profile: str
    ) -> tuple[dict[str, Any], QuotaState | None]:
        """Check the owner's quota and enqueue a self-eval job, in one transaction.

        Raises QuotaExceeded (nothing queued) when the rolling window is used up.
        """
        limit = self.quota_limit(role)
        with self.db.write() as session:
            self._lock_owner(session, owner)
            submission = self._submission(session, submission_id)
            if submission.owner != owner and role != "organizer":
                raise NotYours(
                    f"submission {submission_id} belongs to {submission.owner}",
                    "upload your own copy with `swarmlab submit DIR`",
                )
            quota = None if limit is None else self._quota(session, owner, limit)
            if quota is not None and quota.remaining == 0:
                raise QuotaExceeded(quota)
            job = self._add(session, submission, owner, JobPurpose.self_eval, profile, "public")
            used = None if quota is None else replace(quota, used=quota.used + 1)
            view = job_json(job)
        self._announce_queued(job)
        return view, used

    def enqueue_check(
        self, submission_id: str, purpose: JobPurpose, profile: str, result_id: str
    ) -> dict[str, Any]:
        """Queue a hub-initiated job (verification or degradation) on the private prompts."""
        with self.db.write() as session:
            submission = self._submission(session, submission_id)
            job = self._add(session, submission, submission.owner, purpose, profile, "private")
            job.result_id = result_id
            view = job_json(job)
        self._announce_queued(job)
        return view

    def _submission(self, session: Session, submission_id: str) -> Submission:
        submission = session.get(Submission, submission_id)
        if submission is None:
            raise UnknownRecord(
                f"no submission {submission_id}", "upload one first: `swarmlab submit DIR`"
            )
        return submission

    def _add(
        self,
        session: Session,
        submission: Submission,
        owner: str,
        purpose: JobPurpose,
        profile: str,
        prompt_set: str,
    ) -> Job:
        settings = self.spec.jobs
        job = Job(
            id=new_job_id(),
            submission_id=submission.id,
            owner=owner,
            purpose=purpose,
            prompt_set=prompt_set,
            profile=profile,
            flavor=settings.flavor,
            status=JobStatus.queued,
            created_at=self.clock(),
            max_attempts=settings.max_attempts,
            timeout_s=settings.timeout_s,
            lease_s=settings.lease_s,
            cancel_requested=False,
            stage="",
            progress=0.0,
            message="",
            attempts=0,
            log_seq=0,
        )
        session.add(job)
        session.flush()
        return job

    def _announce_queued(self, job: Job) -> None:
        for hook in self.hooks.queued:
            hook(job.id, job.flavor)

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, Any]:
        """One job's public view."""
        with self.db.read() as session:
            return job_json(self._job(session, job_id))

    def _job(self, session: Session, job_id: str, *, lock: bool = False) -> Job:
        query = select(Job).where(Job.id == job_id)
        if lock and not self.db.is_sqlite:
            query = query.with_for_update()
        job = session.scalars(query).first()
        if job is None:
            raise UnknownRecord(f"no job {job_id}", "list jobs with GET /v1/jobs")
        return job

    def list_jobs(
        self, owner: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The public queue, newest first: who waits, what runs where."""
        query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
        if owner:
            query = query.where(Job.owner == owner)
        if status:
            query = query.where(Job.status == status)
        with self.db.read() as session:
            return [job_json(job) for job in session.scalars(query)]

    def logs(
        self, job_id: str, after: int = 0, limit: int = 500
    ) -> tuple[list[dict[str, Any]], str]:
        """Up to ``limit`` log chunks after sequence number ``after``, and the job's status."""
        with self.db.read() as session:
            job = self._job(session, job_id)
            chunks = session.scalars(
                select(JobLogChunk)
                .where(JobLogChunk.job_id == job_id, JobLogChunk.seq > after)
                .order_by(JobLogChunk.seq)
                .limit(limit)
            )
            return [{"seq": c.seq, "text": c.text} for c in chunks], job.status

    def artifacts(self, job_id: str) -> dict[str, dict[str, Any]]:
        """The job's artifacts by name, with their blob sha256 and size."""
        with self.db.read() as session:
            self._job(session, job_id)
            rows = session.scalars(select(JobArtifact).where(JobArtifact.job_id == job_id))
            return {a.name: {"sha256": a.sha256, "size": a.size} for a in rows}

    # -- the worker side ----------------------------------------------------------------------

    def claim(
        self, worker: str, *, job_id: str | None = None, flavor: str | None = None
    ) -> Claim | None:
        """Take a queued job (a named one, or the oldest of a flavour) under a fresh lease.

        Returns ``None`` when there is nothing to take: the named job is no longer queued (a
        duplicate delivery, or cancelled) or the flavour's queue is empty.
        """
        with self.db.write() as session:
            query = select(Job).where(Job.status == JobStatus.queued)
            query = query.where(Job.id == job_id) if job_id else query.where(Job.flavor == flavor)
            query = query.order_by(Job.created_at, Job.id).limit(1)
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            job = session.scalars(query).first()
            if job is None:
                return None
            submission = self._submission(session, job.submission_id)
            self._start(job, worker)
            self._log(
                session, job, f"[hub] attempt {job.attempts} of {job.max_attempts} on {worker}"
            )
            return Claim(job_json(job), job.lease_id or "", submission.sha256, submission.manifest)

    def _start(self, job: Job, worker: str) -> None:
        now = self.clock()
        check_transition(JobStatus(job.status), JobStatus.running)
        job.status = JobStatus.running
        job.attempts += 1
        job.worker = worker
        job.lease_id = secrets.token_hex(12)
        job.started_at = now
        job.heartbeat_at = now
        job.lease_expires_at = lease_expiry(now, job.lease_s)
        job.stage = "claimed"

    def _held(self, session: Session, job_id: str, lease_id: str) -> Job:
        job = self._job(session, job_id, lock=True)
        if job.status != JobStatus.running or job.lease_id != lease_id:
            raise LeaseLost(
                f"job {job_id} is no longer held by this worker (it is {job.status})",
                "stop working on it: the hub took it back or it was finished elsewhere",
            )
        return job

    def _log(self, session: Session, job: Job, text: str) -> None:
        job.log_seq += 1
        session.add(JobLogChunk(job_id=job.id, seq=job.log_seq, text=text, created_at=self.clock()))

    def heartbeat(
        self,
        job_id: str,
        lease_id: str,
        *,
        stage: str = "",
        progress: float | None = None,
        log: str = "",
    ) -> dict[str, Any]:
        """Renew the lease, record progress and append log text; say whether to cancel."""
        with self.db.write() as session:
            job = self._held(session, job_id, lease_id)
            now = self.clock()
            job.heartbeat_at = now
            job.lease_expires_at = lease_expiry(now, job.lease_s)
            if stage:
                job.stage = stage
            if progress is not None:
                job.progress = min(1.0, max(0.0, progress))
            if log:
                self._log(session, job, log)
            return {
                "cancel": job.cancel_requested,
                "lease_expires_at": job.lease_expires_at.isoformat(),
            }

    def add_artifact(self, job_id: str, lease_id: str, name: str, sha256: str, size: int) -> None:
        """Record an artifact the worker uploaded (its bytes are already in the blob store)."""
        with self.db.write() as session:
            self._held(session, job_id, lease_id)
            session.merge(
                JobArtifact(
                    job_id=job_id, name=name, sha256=sha256, size=size, created_at=self.clock()
                )
            )

    def finish(
        self,
        job_id: str,
        lease_id: str,
        status: JobStatus,
        message: str = "",
        summary: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """End a held job with its outcome; ``summary`` is the run's summary.json."""
        with self.db.write() as session:
            job = self._held(session, job_id, lease_id)
            self._end(session, job, status, message)
            job.summary = summary
            view = job_json(job)
        self._announce_finished(job)
        return view

    def _end(self, session: Session, job: Job, status: JobStatus, message: str) -> None:
        check_transition(JobStatus(job.status), status)
        job.status = status
        job.message = message
        job.finished_at = self.clock()
        job.lease_id = None
        job.lease_expires_at = None
        self._log(session, job, f"[hub] {status}" + (f": {message}" if message else ""))

    def _announce_finished(self, job: Job) -> None:
        for hook in self.hooks.finished:
            hook(job)

    # -- participants and the reaper ------------------------------------------------------------

    def cancel(self, job_id: str, handle: str, is_organizer: bool) -> dict[str, Any]:
        """Cancel a queued job now, or ask a running job's worker to stop at its next heartbeat."""
        with self.db.write() as session:
            job = self._job(session, job_id, lock=True)
            if job.owner != handle and not is_organizer:
                raise NotYours(f"job {job_id} belongs to {job.owner}", "cancel only your own jobs")
            if JobStatus(job.status).terminal:
                raise JobStateConflict(
                    f"job {job_id} is already {job.status}", "nothing to cancel; it is over"
                )
            if job.status == JobStatus.queued:
                self._end(session, job, JobStatus.cancelled, f"cancelled by {handle} before it ran")
            else:
                job.cancel_requested = True
                self._log(session, job, f"[hub] {handle} asked to cancel; the worker stops it")
            view = job_json(job)
        if JobStatus(view["status"]).terminal:
            self._announce_finished(job)
        return view

    def reap(self) -> list[tuple[str, JobStatus]]:
        """Time out jobs past their deadline and take jobs back from workers that went silent.

        A job whose worker lost its lease is queued again while it has attempts left (and
        fails after that); one that had been asked to cancel is cancelled.
        """
        now = self.clock()
        changed: list[Job] = []
        with self.db.write() as session:
            running = session.scalars(select(Job).where(Job.status == JobStatus.running))
            for job in running:
                outcome = self._overdue(job, now)
                if outcome is None:
                    continue
                status, message = outcome
                if status == JobStatus.queued:
                    self._requeue(session, job, message)
                else:
                    self._end(session, job, status, message)
                changed.append(job)
        for job in changed:
            if job.status == JobStatus.queued:
                self._announce_queued(job)
            else:
                self._announce_finished(job)
        return [(job.id, JobStatus(job.status)) for job in changed]

    def _overdue(self, job: Job, now: datetime) -> tuple[JobStatus, str] | None:
        if past_deadline(job.started_at, job.timeout_s, now):
            return JobStatus.timed_out, f"ran past the {job.timeout_s}s job timeout"
        if not lease_expired(job.lease_expires_at, now):
            return None
        if job.cancel_requested:
            return JobStatus.cancelled, "cancelled; its worker went silent"
        status = after_lost_lease(job.attempts, job.max_attempts)
        if status == JobStatus.queued:
            return status, f"worker {job.worker} went silent; queued again"
        return status, f"worker went silent on all {job.max_attempts} attempts"

    def _requeue(self, session: Session, job: Job, message: str) -> None:
        check_transition(JobStatus(job.status), JobStatus.queued)
        job.status = JobStatus.queued
        job.lease_id = None
        job.lease_expires_at = None
        job.worker = None
        job.stage = ""
        job.progress = 0.0
        job.message = message
        self._log(session, job, f"[hub] {message}")

    def queued_ids(self, flavor: str | None = None) -> Sequence[tuple[str, str]]:
        """Queued jobs (id, flavour), oldest first: what an executor should (re)deliver."""
        query = select(Job.id, Job.flavor).where(Job.status == JobStatus.queued)
        if flavor:
            query = query.where(Job.flavor == flavor)
        with self.db.read() as session:
            return [(row.id, row.flavor) for row in session.execute(query.order_by(Job.created_at))]
