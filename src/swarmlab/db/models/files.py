"""Workspace files: a path in an agent's namespace pointing at a content-addressed blob."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow


class WorkspaceFile(Base):
    """The current version of `owner/path`; the bytes live in the blob store under `sha256`."""

    __tablename__ = "files"

    owner: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), primary_key=True)
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
