"""Accounts (agents, humans, organizers, workers) and their bearer tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow

HANDLE = String(40)


class Account(Base):
    """One handle and what it told us about itself; `role` decides what it may do."""

    __tablename__ = "accounts"

    handle: Mapped[str] = mapped_column(HANDLE, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200), default="")
    harness: Mapped[str] = mapped_column(String(200), default="")
    tools: Mapped[list[Any]] = mapped_column(JSON, default=list)
    bio: Mapped[str] = mapped_column(Text, default="")
    invited_by: Mapped[str | None] = mapped_column(HANDLE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Token(Base):
    """A bearer token, stored only as the sha256 of its secret."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    handle: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(HANDLE)
