"""Wake-ups for parked long-polls and event streams, without a thread per waiter.

A waiter is an `asyncio.Event` registered under a handle (or under ANYONE for event streams).
Writers call `notify(handles, event_id)` after their transaction commits, from any thread; the
matching waiters wake and re-query the database. Writes made by another hub process are
caught by `recheck`: the app runs it every `recheck_s` seconds, and when the newest event id
in the database is one this process has not announced, every waiter wakes.

The notifier also keeps a generation per handle (bumped by every notify naming it) and a
global one (bumped by broadcasts and by writes of other processes). An empty long-poll page
stays valid while neither moves, which lets a watcher that comes straight back after a
timeout park without reading the database again. So every write that adds to a handle's
streams (inbox, updates, feed, or their membership) must notify that handle after it commits.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ANYONE = "*"


class Notifier:
    """Registry of parked waiters, keyed by the handle they wait for."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.seen_event_id = 0
        self._generations: dict[str, int] = defaultdict(int)
        self._global_generation = 0
        self._lock = threading.Lock()
        self.closing = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the event loop that runs the waiters."""
        self._loop = loop

    @contextmanager
    def waiter(self, handle: str) -> Iterator[asyncio.Event]:
        """Register an event woken by writes addressed to `handle` (ANYONE: every write)."""
        if self._loop is None:
            self.bind(asyncio.get_running_loop())
        event = asyncio.Event()
        self._waiters[handle].add(event)
        try:
            yield event
        finally:
            self._waiters[handle].discard(event)
            if not self._waiters[handle]:
                del self._waiters[handle]

    def generation(self, handle: str) -> tuple[int, int]:
        """(global, handle) generation: if unchanged, nothing was written for `handle` since."""
        with self._lock:
            return self._global_generation, self._generations.get(handle, 0)

    def _advance(self, handles: Collection[str] | None) -> None:
        with self._lock:
            if handles is None:
                self._global_generation += 1
            for handle in handles or ():
                self._generations[handle] += 1

    def notify(self, handles: Collection[str] | None, event_id: int | None = None) -> None:
        """Wake waiters for `handles` (None: all) and every ANYONE waiter; thread-safe."""
        self._advance(handles)
        if event_id is not None:
            self.seen_event_id = max(self.seen_event_id, event_id)
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._wake, None if handles is None else set(handles))

    def _wake(self, handles: set[str] | None) -> None:
        keys = list(self._waiters) if handles is None else [*handles, ANYONE]
        for key in keys:
            for event in self._waiters.get(key, ()):
                event.set()

    def recheck(self, newest: int) -> None:
        """Wake everyone if the database's newest event id is one this process did not announce."""
        if newest > self.seen_event_id:
            self.seen_event_id = newest
            self._advance(None)
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._wake, None)

    def close(self) -> None:
        """The hub is stopping: wake every waiter; parked polls answer now, streams end."""
        self.closing = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, None)

    @property
    def parked(self) -> int:
        """How many waiters are parked right now."""
        return sum(len(events) for events in self._waiters.values())


@dataclass(frozen=True)
class QuietPage:
    """An empty stream page and the request and generation it was read under."""

    request: object
    generation: tuple[int, int]
    page: dict[str, Any]


class WatchMarks:
    """Who parked a wait-poll lately, kept in memory and flushed to the database in batches.

    Recording a watcher on every poll would cost a commit per poll; the app's background loop
    writes the pending marks in one transaction every `recheck_s` seconds instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str, datetime]] = {}
        # Held while marks are being written, so a reader that flushes first sees them all.
        self.flushing = threading.Lock()

    def mark(self, handle: str, stream: str) -> None:
        """Note that `handle` parked a poll on `stream` just now."""
        with self._lock:
            self._pending[handle] = (stream, datetime.now(tz=UTC))

    def take(self) -> dict[str, tuple[str, datetime]]:
        """The marks noted since the last call (and forget them)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending
