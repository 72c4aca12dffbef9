"""The event stream behind `GET /v1/events` (server-sent events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from swarmlab.api.hub import Hub
from swarmlab.api.notifier import ANYONE
from swarmlab.db.models import Event

BATCH = 100
KEEPALIVE_S = 15.0


def read_events(hub: Hub, after: int, kinds: frozenset[str] | None) -> list[Event]:
    """Up to BATCH events with ids above `after`, oldest first."""
    query = select(Event).where(Event.id > after).order_by(Event.id).limit(BATCH)
    if kinds:
        query = query.where(Event.kind.in_(kinds))
    with hub.db.read() as session:
        return list(session.scalars(query))


def format_event(event: Event) -> str:
    """One SSE frame: `id`, `event` (the kind) and `data` (JSON)."""
    data: dict[str, Any] = {
        "id": event.id,
        "kind": event.kind,
        "ref": event.ref,
        "at": event.created_at.isoformat(),
        **event.payload,
    }
    return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(data)}\n\n"


def start_frame(after: int) -> str:
    """An id-only frame (no data, so no event): it sets the client's last event id to where
    this stream starts, so a client that reconnects before any event arrives resumes from
    there instead of from the newest event at reconnection (which would skip the gap)."""
    return f"id: {after}\n\n"


async def stream(
    hub: Hub, after: int, kinds: frozenset[str] | None, follow: bool
) -> AsyncIterator[str]:
    """Frames for every event after `after`; with `follow`, then new ones as they commit."""
    yield start_frame(after)
    with hub.notifier.waiter(ANYONE) as woken:
        while True:
            woken.clear()
            batch = await run_in_threadpool(read_events, hub, after, kinds)
            for event in batch:
                after = event.id
                yield format_event(event)
            if len(batch) == BATCH:
                continue
            if not follow or hub.notifier.closing:
                return
            try:
                await asyncio.wait_for(woken.wait(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
