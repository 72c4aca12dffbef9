"""`Client.events` on scripted transports: the SSE wire format, resumption, retries, errors.

The same stream against a real hub process (kills, restarts) is in test_events_hub.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from swarmlab.client import ApiError, AuthError, Client, Event, StreamLost
from swarmlab.client.events import SseFrame, SseParser

SSE = {"content-type": "text/event-stream"}


def frame(event_id: int, kind: str = "message") -> str:
    data = {"id": event_id, "kind": kind, "ref": f"r{event_id}", "at": "2026-01-01T00:00:00"}
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"


def parse(text: str) -> tuple[list[SseFrame], SseParser]:
    parser = SseParser()
    frames = [f for line in text.split("\n") if (f := parser.feed(line))]
    return frames, parser


def test_data_lines_join_with_newlines_and_one_leading_space_is_dropped() -> None:
    frames, _ = parse("data: first\ndata:second\ndata:  third\ndata\n\n")
    assert frames == [SseFrame("message", "first\nsecond\n third\n", None)]


def test_comments_and_frames_without_data_dispatch_nothing() -> None:
    frames, parser = parse(": keepalive\n\n:\n\nevent: verdict\n\nid: 7\n\n")
    assert frames == []
    assert parser.last_id == "7"  # an id-only frame still moves the stream's position


def test_event_id_and_retry_fields() -> None:
    frames, parser = parse("retry: 250\nid: 4\nevent: result\ndata: x\n\ndata: y\n\nretry: 1s\n")
    assert frames == [SseFrame("result", "x", "4"), SseFrame("message", "y", "4")]
    assert parser.retry_ms == 250  # a retry that is not all digits is ignored


def test_an_id_only_counts_once_its_frame_is_complete() -> None:
    frames, parser = parse("id: 1\ndata: a\n\nid: 2\ndata: b")  # the stream broke mid-frame
    assert [f.id for f in frames] == ["1"]
    assert parser.last_id == "1"


def test_an_id_with_a_nul_is_ignored_and_a_leading_bom_is_dropped() -> None:
    frames, _ = parse("\ufeffid: 3\ndata: a\n\nid: 4\0\ndata: b\n\n")
    assert [f.id for f in frames] == ["3", "3"]


class ScriptedHub:
    """Answers each `GET /v1/events` with the next scripted reply; records the requests."""

    def __init__(self, *replies: Callable[[httpx.Request], httpx.Response]) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.replies.pop(0)(request)

    def client(self, sleeps: list[float] | None = None) -> Client:
        record = sleeps.append if sleeps is not None else lambda s: None
        return Client("http://hub.test", "t", httpx.MockTransport(self), sleep=record)

    def resumed_from(self) -> list[str | None]:
        return [r.headers.get("Last-Event-ID") for r in self.requests]


def stream(body: str, then_fail: bool = False) -> Callable[[httpx.Request], httpx.Response]:
    """A 200 event stream sending `body` in small chunks, then ending or breaking."""

    def chunks() -> Iterator[bytes]:
        data = body.encode()
        for start in range(0, len(data), 7):
            yield data[start : start + 7]
        if then_fail:
            raise httpx.ReadError("connection reset by peer")

    return lambda request: httpx.Response(200, headers=SSE, content=chunks())


def status(code: int, payload: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, json=payload)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_events_arrive_typed_in_order_and_a_replay_ends() -> None:
    hub = ScriptedHub(stream("id: 0\n\n" + frame(1) + ": keepalive\n\n" + frame(2, "result")))
    with hub.client().events(after=0, kinds=["message", "result"], follow=False) as events:
        got = list(events)
    assert [(e.id, e.kind, e.ref) for e in got] == [(1, "message", "r1"), (2, "result", "r2")]
    assert isinstance(got[0], Event) and got[0].at.year == 2026
    params = hub.requests[0].url.params
    assert (params["kinds"], params["follow"]) == ("message,result", "false")
    assert hub.resumed_from() == ["0"]
    assert hub.requests[0].headers["Authorization"] == "Bearer t"


def test_a_broken_connection_resumes_after_the_last_event_after_the_retry_delay() -> None:
    first = "retry: 1500\nid: 0\n\n" + frame(1) + frame(2) + "id: 3\ndata: {"  # broken frame 3
    hub = ScriptedHub(stream(first, then_fail=True), stream(frame(3) + frame(4)))
    sleeps: list[float] = []
    events = hub.client(sleeps).events(follow=False)
    assert [e.id for e in events] == [1, 2, 3, 4]
    assert hub.resumed_from() == [None, "2"]
    assert sleeps == [1.5]


def test_a_stream_with_no_event_yet_resumes_from_where_it_started() -> None:
    hub = ScriptedHub(stream("id: 41\n\n: keepalive\n\n"), stream(frame(42)))
    events = hub.client().events()
    assert next(events).id == 42
    assert hub.resumed_from() == [None, "41"]  # not "the newest event", which may be later


def test_events_the_caller_already_has_are_not_repeated() -> None:
    hub = ScriptedHub(stream(frame(1) + frame(2), then_fail=True), stream(frame(2) + frame(3)))
    assert [e.id for e in hub.client().events(after=0, follow=False)] == [1, 2, 3]


def test_a_replayed_older_event_does_not_move_the_stream_back() -> None:
    replay = frame(1) + ": keepalive\n\n" + frame(2) + frame(3)
    hub = ScriptedHub(stream(frame(1) + frame(2), then_fail=True), stream(replay))
    events = hub.client().events(after=0, follow=False)
    assert [e.id for e in events] == [1, 2, 3]
    assert events.last_event_id == "3"


def test_a_down_hub_is_retried_with_backoff_then_stream_lost_says_how_to_resume() -> None:
    hub = ScriptedHub(stream(frame(5), then_fail=True), *[refused] * 10)
    sleeps: list[float] = []
    events = hub.client(sleeps).events(after=4)
    assert next(events).id == 5
    with pytest.raises(StreamLost) as lost:
        next(events)
    assert lost.value.last_event_id == "5" and lost.value.attempts == 10
    assert "--since 5" in str(lost.value) and "swarmlab serve" in str(lost.value)
    assert sleeps == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]
    assert set(hub.resumed_from()) == {"4", "5"}


def test_server_errors_are_retried() -> None:
    down = {"error": {"code": "internal", "message": "boom", "hint": ""}}
    hub = ScriptedHub(status(503, down), stream(frame(1)))
    assert [e.id for e in hub.client().events(after=0, follow=False)] == [1]


@pytest.mark.parametrize("code", [401, 403])
def test_auth_refusals_raise_at_once_with_the_hubs_hint(code: int) -> None:
    error = {"error": {"code": "unauthorized", "message": "bad token", "hint": "register again"}}
    hub = ScriptedHub(status(code, error))
    with pytest.raises(AuthError) as caught:
        next(hub.client().events())
    assert caught.value.status == code and "register again" in str(caught.value)
    assert len(hub.requests) == 1


def test_a_server_that_is_not_a_hub_is_named() -> None:
    hub = ScriptedHub(lambda request: httpx.Response(200, text="<html>"))
    with pytest.raises(ApiError, match="not text/event-stream"):
        next(hub.client().events())


def test_close_ends_the_iteration_and_the_connection() -> None:
    hub = ScriptedHub(stream(frame(1) + frame(2)))
    events = hub.client().events(after=0)
    assert next(events).id == 1
    events.close()
    assert list(events) == [] and events.closed()
    assert len(hub.requests) == 1
