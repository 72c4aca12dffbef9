"""Results, their lineage (`builds_on`) and their verification verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow
from swarmlab.db.models.identity import HANDLE
from swarmlab.db.models.messages import RECORD_ID


class Result(Base):
    """An immutable result claim. Only withdrawal and verification change after posting."""

    __tablename__ = "results"

    id: Mapped[str] = mapped_column(RECORD_ID, primary_key=True)
    stamp_ms: Mapped[int] = mapped_column(BigInteger, unique=True)
    author: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), index=True)
    score: Mapped[float] = mapped_column(Float)
    guard: Mapped[float | None] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    submission: Mapped[str | None] = mapped_column(String(128))
    job: Mapped[str | None] = mapped_column(String(128))
    provenance: Mapped[str] = mapped_column(String(32), default="self-reported")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(HANDLE)
    withdraw_reason: Mapped[str | None] = mapped_column(Text)
    verification: Mapped[str] = mapped_column(String(16), default="pending")
    verification_source: Mapped[str] = mapped_column(String(16), default="none")
    verification_version: Mapped[int] = mapped_column(default=0)


class ResultLink(Base):
    """`result_id` builds on `builds_on` (credit and lineage across contributors)."""

    __tablename__ = "result_links"

    result_id: Mapped[str] = mapped_column(ForeignKey("results.id"), primary_key=True)
    builds_on: Mapped[str] = mapped_column(ForeignKey("results.id"), primary_key=True, index=True)


class Verdict(Base):
    """One verification decision; the latest accepted one is copied onto the result."""

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    result_id: Mapped[str] = mapped_column(ForeignKey("results.id"), index=True)
    verdict: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(HANDLE)
    reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
