"""The append-only audit log of every write, readable by organizers only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow
from swarmlab.db.models.identity import HANDLE


class AuditEntry(Base):
    """Who tried which write, on what, with what outcome, from where."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(HANDLE, index=True)
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(1000))
    status: Mapped[int]
    client: Mapped[str | None] = mapped_column(String(64))
