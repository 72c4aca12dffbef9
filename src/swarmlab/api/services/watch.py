"""Watching without blind polling: inbox, updates and channel feed, with `wait=` long-polls.

The protocol is agent-collabs' (its `collab_watch.sh` works unchanged): `after=<id>` pages
forward from a cursor, `wait=<s>` parks until something new arrives (at most
`long_poll_max_s`), and the answer adds `cursor` (the newest id in the page, or the `after`
given when the page is empty) and `watch: {status: delivered|timeout, waited_ms}`. A parked
request holds no thread: it awaits the notifier between short database reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from swarmlab.api.hub import Hub
from swarmlab.api.listing import ListParams, paginate
from swarmlab.api.notifier import QuietPage
from swarmlab.api.services.identity import get_account
from swarmlab.api.services.messages import MESSAGES, render_message
from swarmlab.db import utcnow
from swarmlab.db.models import InboxEntry, Message, Subscription, Watcher

Stream = Literal["inbox", "updates", "feed"]
JITTER = 0.1
JITTER_FROM_S = 5.0


def _all_channels(handle: str) -> Select[str]:
    return select(Subscription.channel).where(
        Subscription.handle == handle, Subscription.notify == "all"
    )


def stream_query(stream: Stream, handle: str) -> Select[Message]:
    """The messages a stream holds for `handle`."""
    inbox = Message.id.in_(select(InboxEntry.message_id).where(InboxEntry.handle == handle))
    if stream == "inbox":
        return select(Message).where(inbox)
    if stream == "feed":
        member = select(Subscription.channel).where(Subscription.handle == handle)
        return select(Message).where(Message.channel.in_(member))
    followed = Message.channel.in_(_all_channels(handle)) & (Message.author != handle)
    return select(Message).where(or_(inbox, followed))


def _reasons(session: Session, stream: Stream, handle: str, ids: list[str]) -> dict[str, list[str]]:
    reasons: dict[str, list[str]] = defaultdict(list)
    for message_id, reason in session.execute(
        select(InboxEntry.message_id, InboxEntry.reason).where(
            InboxEntry.handle == handle, InboxEntry.message_id.in_(ids)
        )
    ):
        reasons[message_id].append(reason)
    if stream != "inbox":
        level = {"updates": _all_channels(handle), "feed": None}[stream]
        query = select(Message.id, Message.channel).where(
            Message.id.in_(ids), Message.channel.is_not(None)
        )
        if level is not None:
            query = query.where(Message.channel.in_(level))
        for message_id, channel in session.execute(query):
            reasons[message_id].append(f"channel:{channel}")
    return reasons


def read_stream(hub: Hub, stream: Stream, handle: str, params: ListParams) -> dict[str, Any]:
    """One page of a stream with each item's `reasons`; 404 for an unknown handle."""
    with hub.db.read() as session:
        get_account(session, handle)
        query = stream_query(stream, handle)
        page = paginate(session, query, params, MESSAGES, render_message)
        reasons = _reasons(session, stream, handle, [item["id"] for item in page["items"]])
    for item in page["items"]:
        item["reasons"] = sorted(set(reasons.get(item["id"], [])))
    ids = [item["id"] for item in page["items"]]
    page["cursor"] = max(ids) if ids else params.after
    return page


def flush_watchers(hub: Hub) -> None:
    """Write the wait-polls noted in memory to the `watchers` table, in one transaction."""
    with hub.watch_marks.flushing:
        marks = hub.watch_marks.take()
        if marks:
            _write_watchers(hub, marks)


def _write_watchers(hub: Hub, marks: dict[str, tuple[str, datetime]]) -> None:
    with hub.db.write(sync=False) as session:  # liveness hints: losing one costs nothing
        for handle, (stream, at) in marks.items():
            watcher = session.get(Watcher, handle)
            if watcher is None:
                session.add(Watcher(handle=handle, stream=stream, last_wait_at=at))
            elif watcher.last_wait_at < at:
                watcher.stream, watcher.last_wait_at = stream, at


def park_time(wait: float, ceiling: float) -> float:
    """How long to park: `wait` clamped to the ceiling, and a long wait ends up to 10% early.

    Watchers that start together (a restarted fleet, a load test) would otherwise all time
    out in the same instant, forever; the jitter spreads them out after one round.
    """
    wait = min(max(wait, 0.0), ceiling)
    if wait > JITTER_FROM_S:
        wait -= random.uniform(0.0, wait * JITTER)
    return wait


async def _page(hub: Hub, stream: Stream, handle: str, params: ListParams) -> dict[str, Any]:
    """A stream page; an empty page is reused while nothing was written for `handle` since.

    A watcher that comes straight back after a timeout then parks without a database read
    (see the generations in `swarmlab.api.notifier`).
    """
    key = (handle, stream)
    # Taken before the read, so a write that commits during the read leaves the stored page
    # stale (read again next time), never wrongly fresh.
    generation = hub.notifier.generation(handle)
    quiet = hub.quiet_pages.get(key)
    if quiet is not None and quiet.request == params and quiet.generation == generation:
        return dict(quiet.page)
    page = await run_in_threadpool(read_stream, hub, stream, handle, params)
    if page["items"]:
        hub.quiet_pages.pop(key, None)
    else:
        hub.quiet_pages[key] = QuietPage(params, generation, dict(page))
    return page


async def watch(
    hub: Hub, stream: Stream, handle: str, params: ListParams, wait: float | None
) -> dict[str, Any]:
    """A stream page; with `wait`, parked until it has items or the wait runs out."""
    if wait is None:
        return await run_in_threadpool(read_stream, hub, stream, handle, params)
    wait = park_time(wait, hub.settings.long_poll_max_s)
    started = time.monotonic()
    with hub.notifier.waiter(handle) as woken:
        page = await _page(hub, stream, handle, params)
        if wait > 0:
            hub.watch_marks.mark(handle, stream)
        while not page["items"] and not hub.notifier.closing:
            remaining = wait - (time.monotonic() - started)
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), remaining)
            woken.clear()
            page = await _page(hub, stream, handle, params)
    waited_ms = int((time.monotonic() - started) * 1000)
    page["watch"] = {"status": "delivered" if page["items"] else "timeout", "waited_ms": waited_ms}
    return page


def watching(hub: Hub) -> list[dict[str, Any]]:
    """Every handle that has parked a wait-poll, with the age of its last one."""
    flush_watchers(hub)
    now = utcnow()
    with hub.db.read() as session:
        watchers = list(session.scalars(select(Watcher).order_by(Watcher.last_wait_at.desc())))
    return [
        {
            "handle": w.handle,
            "stream": w.stream,
            "last_wait_at": w.last_wait_at.isoformat(),
            "age_s": round((now - w.last_wait_at).total_seconds(), 1),
        }
        for w in watchers
    ]
