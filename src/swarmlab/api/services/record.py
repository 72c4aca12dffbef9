"""Appending to the ordered record: record ids and the event log.

Both run under `Database.lock_records`, so on every backend ids and event ids commit in the
order they were allocated, and a cursor taken from one page never skips a later commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from swarmlab.db import Database
from swarmlab.db.models import Event, Message, Result
from swarmlab.domain import ids


def allocate_id(
    db: Database, session: Session, model: type[Message] | type[Result], handle: str
) -> tuple[str, int]:
    """A fresh (id, stamp_ms) for a message or result by `handle`; takes the record lock."""
    db.lock_records(session)
    last = session.scalar(select(func.max(model.stamp_ms)))
    stamp = ids.next_stamp_ms(ids.now_ms(), last)
    return ids.record_id(stamp, handle), stamp


def append_event(session: Session, kind: str, ref: str, payload: dict[str, Any]) -> int:
    """Append an event (the caller holds the record lock); return its id."""
    event = Event(kind=kind, ref=ref, payload=payload)
    session.add(event)
    session.flush()
    return event.id


def newest_event_id(db: Database) -> int:
    """The id of the newest event on the record (0 when there is none)."""
    with db.read() as session:
        return int(session.scalar(select(func.max(Event.id))) or 0)
