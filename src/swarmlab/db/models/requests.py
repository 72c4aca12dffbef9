"""Request bookkeeping kept in the database so restarts and several hub processes agree:
rate-limit hits and idempotent POST answers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow
from swarmlab.db.models.identity import HANDLE


class RateHit(Base):
    """One counted action of a handle in a rate-limit bucket (a sliding-window log)."""

    __tablename__ = "rate_hits"
    __table_args__ = (Index("ix_rate_hits_handle_bucket_at", "handle", "bucket", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    handle: Mapped[str] = mapped_column(HANDLE)
    bucket: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(Base):
    """The first answer to a POST carrying an `Idempotency-Key`, replayed on retries.

    `status` is None while the first request is still being handled.
    """

    __tablename__ = "idempotency"

    actor: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[int | None]
    content_type: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
