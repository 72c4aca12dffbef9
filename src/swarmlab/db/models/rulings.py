"""Exploit reports and the organizers' rulings that settle them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow
from swarmlab.db.models.identity import HANDLE

RULING_ID = String(40)


class Ruling(Base):
    """A published decision; ``affects`` lists the result ids it invalidates."""

    __tablename__ = "rulings"

    id: Mapped[str] = mapped_column(RULING_ID, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(HANDLE)
    effective_at: Mapped[datetime]
    affects: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Report(Base):
    """An exploit report: organizers see it at once, everyone once a ruling settles it."""

    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(RULING_ID, primary_key=True)
    author: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    results: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ruling_id: Mapped[str | None] = mapped_column(ForeignKey("rulings.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
