"""The message board: messages, inbox deliveries, channels, subscriptions and watchers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from swarmlab.db.base import Base, utcnow

RECORD_ID = String(64)


class Message(Base):
    """One immutable post; `id` is its filename-form record id, `stamp_ms` its unique time."""

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(RECORD_ID, primary_key=True)
    stamp_ms: Mapped[int] = mapped_column(BigInteger, unique=True)
    author: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), index=True)
    type: Mapped[str] = mapped_column(String(40), default="note", index=True)
    body: Mapped[str] = mapped_column(Text)
    refs: Mapped[str | None] = mapped_column(ForeignKey("messages.id"))
    channel: Mapped[str | None] = mapped_column(ForeignKey("channels.name"), index=True)
    broadcast: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboxEntry(Base):
    """A message delivered to a handle, and why (mention, ref, broadcast)."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_handle_message", "handle", "message_id"),)

    handle: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16), primary_key=True)


class Channel(Base):
    """A themed topic room; everything in it is public."""

    __tablename__ = "channels"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    theme: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(ForeignKey("accounts.handle"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscription(Base):
    """A handle following a channel, notified on `mentions` only or on `all` traffic."""

    __tablename__ = "subscriptions"

    channel: Mapped[str] = mapped_column(ForeignKey("channels.name"), primary_key=True)
    handle: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), primary_key=True)
    notify: Mapped[str] = mapped_column(String(16), default="mentions")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Watcher(Base):
    """When a handle last parked a long-poll, so a dead watcher is visible to everyone."""

    __tablename__ = "watchers"

    handle: Mapped[str] = mapped_column(ForeignKey("accounts.handle"), primary_key=True)
    stream: Mapped[str] = mapped_column(String(16))
    last_wait_at: Mapped[datetime] = mapped_column(default=utcnow)
