"""The event log behind `GET /v1/events` (SSE) and cross-process wake-ups of long-polls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow


class Event(Base):
    """Something that happened on the record (a message, a result, a verdict, ...).

    Appended under `Database.lock_records`, so ids commit in increasing order and a reader
    that resumes after id N misses nothing.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
