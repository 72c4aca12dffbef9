"""The hub's live event stream, `GET /v1/events` (server-sent events), as typed `Event`s.

    with hub.events(kinds=["result", "verdict"]) as stream:
        for event in stream:                     # blocks; survives hub restarts
            print(event.id, event.kind, event.ref)

Frames are read by the server-sent events rules (WHATWG HTML, "event stream
interpretation"): `data` lines join with newlines, comment lines (the hub's keepalives) are
skipped, `id` is remembered across frames and only committed when a frame completes, `retry`
sets the reconnection delay. The stream resumes after a dropped connection or a hub restart
by sending the last committed id as `Last-Event-ID`; the hub replays everything after it in id
order, so each event reaches the caller exactly once. The hub opens every stream with an
id-only frame naming where it starts, so even a stream that has seen no event yet resumes from
its own start rather than from the (later) newest event.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from swarmlab.client.errors import ApiError, ServerError, StreamLost

#: Reconnection delay until the hub sends `retry:`; it doubles per consecutive failure.
DEFAULT_RETRY_S = 2.0
MAX_RETRY_S = 60.0
#: Consecutive failed (re)connections after which the stream raises `StreamLost`.
STREAM_FAILURES = 10
#: The hub sends a keepalive every 15 s, so three missed ones mean the connection is dead.
READ_TIMEOUT_S = 45.0

Connect = Callable[[dict[str, str]], AbstractContextManager[httpx.Response]]


@dataclass(frozen=True)
class SseFrame:
    """One dispatched server-sent event: its type, data, and the last event id at that point."""

    event: str
    data: str
    id: str | None


class SseParser:
    """Turns the lines of one event-stream connection into frames, field by field."""

    def __init__(self, last_id: str | None = None) -> None:
        self.last_id = last_id
        self.retry_ms: int | None = None
        self._data: list[str] = []
        self._event = ""
        self._id = last_id
        self._first = True

    def feed(self, line: str) -> SseFrame | None:
        """Take one line (without its end); a blank line completes the frame being built."""
        if self._first:
            line, self._first = line.removeprefix("\ufeff"), False
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        self._field(name, value.removeprefix(" "))
        return None

    def _field(self, name: str, value: str) -> None:
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)

    def _dispatch(self) -> SseFrame | None:
        """Commit the id (even for a frame without data); emit the frame if it has data."""
        self.last_id = self._id
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseFrame(event or "message", "\n".join(data), self.last_id)


@dataclass(frozen=True)
class Event:
    """One record change on the hub: a `message`, `result`, `withdrawal` or `verdict`.

    `ref` is the message or result id the event is about; `data` is the whole payload
    (`author`, `channel`, `agent`, `score`, `verdict`, ... depending on the kind).
    """

    id: int
    kind: str
    ref: str
    at: datetime
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_frame(cls, frame: SseFrame) -> Event:
        try:
            data = json.loads(frame.data)
            return cls(
                id=int(data["id"]),
                kind=str(data.get("kind") or frame.event),
                ref=str(data.get("ref", "")),
                at=datetime.fromisoformat(data["at"]),
                data=data,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiError(
                200,
                "bad_event",
                f"the hub sent an event this SDK cannot read ({exc}): {frame.data[:200]!r}",
                "upgrade the hub or the SDK so both speak the same event format",
            ) from exc


class EventStream:
    """An open subscription to the hub's events: iterate it, `close()` it (or use `with`).

    `last_event_id` is where the stream stands (the last event handed out, or where it
    started); pass it as `after=` to a later `Client.events` to carry on from there.
    `close()` may be called from another thread to end a blocked iteration.
    """

    def __init__(
        self,
        url: str,
        connect: Connect,
        *,
        after: int | None,
        follow: bool,
        sleep: Callable[[float], None],
        failures: int = STREAM_FAILURES,
    ) -> None:
        self.url = url
        self.last_event_id = None if after is None else str(after)
        self.retry_s = DEFAULT_RETRY_S
        self._connect = connect
        self._follow = follow
        self._sleep = sleep
        self._failures = failures
        self._response: httpx.Response | None = None
        self._closed = False
        self._events = self._run()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop: the open connection is closed and iteration ends."""
        self._closed = True
        response = self._response
        if response is not None:
            _interrupt(response)
        # ValueError: being iterated in another thread, which sees `_closed` and returns
        # (closing the response on the way out).
        with suppress(ValueError):
            self._events.close()

    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    def _run(self) -> Generator[Event]:
        failures = 0
        while not self.closed():
            try:
                with self._connect(self._headers()) as response:
                    self._response, failures = response, 0
                    _check_event_stream(response)
                    yield from self._read(response)
                if not self._follow:
                    return
            except (httpx.TransportError, ServerError) as exc:
                if self.closed():
                    return
                failures += 1
                if failures >= self._failures:
                    raise StreamLost(self.url, exc, failures, self.last_event_id) from exc
            except Exception:
                if self.closed():
                    return  # close() from another thread broke the read
                raise
            finally:
                self._response = None
            self._sleep(self._delay(failures))

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def _read(self, response: httpx.Response) -> Iterator[Event]:
        parser = SseParser(self.last_event_id)
        for line in response.iter_lines():
            frame = parser.feed(line)
            if parser.retry_ms is not None:
                self.retry_s = parser.retry_ms / 1000
            if frame is None:
                self._advance(parser.last_id)  # an id-only frame names a position
                continue
            event = Event.from_frame(frame)
            if not _after(event.id, self.last_event_id):
                continue  # already delivered: ids only grow
            self._advance(frame.id or str(event.id))
            yield event

    def _advance(self, last_id: str | None) -> None:
        """Move the position forward only: a replayed older id must not move it back."""
        if last_id is None or last_id == self.last_event_id:
            return
        if last_id.isdigit() and not _after(int(last_id), self.last_event_id):
            return
        self.last_event_id = last_id

    def _delay(self, failures: int) -> float:
        """`retry` after a clean end or a first failure, doubling per failure after that."""
        return min(MAX_RETRY_S, self.retry_s * 2.0 ** max(0, failures - 1))


def _interrupt(response: httpx.Response) -> None:
    """Wake a read blocked on this response's socket, from any thread.

    Closing the response from another thread would race httpx's own state, and closing a
    socket does not wake a `recv` already waiting on it; shutting the socket down does. The
    reading thread then fails, sees the stream closed, and closes the response itself.
    """
    network = response.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if isinstance(sock, socket.socket):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _after(event_id: int, last_id: str | None) -> bool:
    """Whether an event is new to a stream standing at `last_id` (hub ids are integers)."""
    return last_id is None or not last_id.isdigit() or event_id > int(last_id)


def _check_event_stream(response: httpx.Response) -> None:
    kind = response.headers.get("content-type", "")
    if not kind.startswith("text/event-stream"):
        raise ApiError(
            response.status_code,
            "not_an_event_stream",
            f"GET /v1/events answered {kind or 'no content type'!r}, not text/event-stream",
            "check that the URL points at a swarmlab hub (`GET /v1` describes one)",
        )


def event_params(kinds: Sequence[str], follow: bool) -> dict[str, Any]:
    """The query of `GET /v1/events`; the position travels as `Last-Event-ID`."""
    return {"kinds": ",".join(kinds) if kinds else None, "follow": follow}
