"""Submissions, benchmark jobs, their log and their artifacts.

A submission is an immutable bundle (blob named by its sha256) owned by its uploader. A job runs
one submission on one hardware flavour; its lease (owner and expiry), heartbeat and attempt count
let the hub take a job back from a worker that died. Logs are append-only chunks numbered in
order, so a follower resumes after the last chunk it saw.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow

JOB_ID = String(40)
SHA256 = String(64)


class Submission(Base):
    """An uploaded entry: a tar.gz blob, its validated manifest, and who owns it."""

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("owner", "sha256", name="uq_submissions_owner_sha256"),)

    id: Mapped[str] = mapped_column(JOB_ID, primary_key=True)
    owner: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), index=True)
    sha256: Mapped[str] = mapped_column(SHA256, index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One benchmark run of a submission; the hub is the only writer of these rows."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_flavor_created", "status", "flavor", "created_at"),
        Index("ix_jobs_owner_created", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(JOB_ID, primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), index=True)
    owner: Mapped[str] = mapped_column(ForeignKey("accounts.handle"))
    purpose: Mapped[str] = mapped_column(String(16))
    prompt_set: Mapped[str] = mapped_column(String(16), default="public")
    profile: Mapped[str] = mapped_column(String(40))
    flavor: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    result_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    timeout_s: Mapped[int]
    lease_s: Mapped[int]
    lease_id: Mapped[str | None] = mapped_column(String(40))
    worker: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    stage: Mapped[str] = mapped_column(String(40), default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    log_seq: Mapped[int] = mapped_column(default=0)


class JobLogChunk(Base):
    """A piece of a job's log, in the order the worker sent it."""

    __tablename__ = "job_logs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobArtifact(Base):
    """A file a job produced (summary.json, decode outputs, PPL results, server log)."""

    __tablename__ = "job_artifacts"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    sha256: Mapped[str] = mapped_column(SHA256)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
