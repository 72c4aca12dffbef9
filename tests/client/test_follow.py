"""`Client.follow`: baseline, persistent cursor, at-least-once delivery.

The stream here is a scripted list of ids answered the way issue 2's watch protocol says
(`after` exclusive, `order`, `limit`, top-level `cursor` = newest id in the page); the same
behaviour against the real hub is covered in test_sdk_hub.py.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from swarmlab.client import Client, NotFound, ServerError


class ScriptedInbox:
    """An inbox holding `ids`; records every query it was asked."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        self.queries.append(query)
        chosen = [i for i in self.ids if i > query.get("after", "")]
        if query.get("order") == "desc":
            chosen.reverse()
        page = chosen[: int(query.get("limit", "10"))]
        items = [{"id": i, "body": f"message {i}"} for i in page]
        cursor = max(page) if page else None
        status = "delivered" if page else "timeout"
        return httpx.Response(
            200, json={"items": items, "next": None, "cursor": cursor, "watch": {"status": status}}
        )


def ids(n: int) -> list[str]:
    return [f"20260101-000000-{i:03d}_bob.md" for i in range(n)]


def client(inbox: ScriptedInbox) -> Client:
    return Client("http://hub.test", "t", httpx.MockTransport(inbox), handle="alice")


def test_a_first_follow_skips_history_and_delivers_what_arrives(tmp_path: Path) -> None:
    inbox = ScriptedInbox(ids(3))
    stream = client(inbox).follow(cursor_file=tmp_path / "cursor", wait=1)
    inbox.ids += ids(5)[3:]
    assert [next(stream)["id"], next(stream)["id"]] == ids(5)[3:]
    baseline, first_poll = inbox.queries[:2]
    assert (baseline["order"], baseline["limit"]) == ("desc", "1")
    assert first_poll["after"] == ids(3)[-1]
    assert (first_poll["order"], first_poll["expand"], first_poll["wait"]) == ("asc", "true", "1")


def test_an_item_not_yet_handled_is_delivered_again_after_a_restart(tmp_path: Path) -> None:
    cursor = tmp_path / "cursor"
    inbox = ScriptedInbox([])
    stream = client(inbox).follow(cursor_file=cursor, wait=1)
    inbox.ids += ids(3)
    assert next(stream)["id"] == ids(3)[0]
    assert next(stream)["id"] == ids(3)[1]  # asking for the next one acknowledges the first
    stream.close()  # the process "dies" while handling the second
    assert cursor.read_text().strip() == ids(3)[0]
    again = client(inbox).follow(cursor_file=cursor, wait=1)
    assert [next(again)["id"], next(again)["id"]] == ids(3)[1:]


def test_a_baseline_on_an_empty_stream_is_remembered(tmp_path: Path) -> None:
    cursor = tmp_path / "cursor"
    inbox = ScriptedInbox([])
    stream = client(inbox).follow(cursor_file=cursor, wait=1)
    inbox.ids += ids(1)
    assert next(stream)["id"] == ids(1)[0]
    assert "after" not in inbox.queries[1]  # nothing seen yet is no bound, not an empty one
    stream.close()
    inbox.ids += ids(2)[1:]
    assert next(client(inbox).follow(cursor_file=cursor, wait=1))["id"] == ids(1)[0]


def test_an_explicit_start_cursor_replays_from_there() -> None:
    inbox = ScriptedInbox(ids(4))
    stream = client(inbox).follow(after=ids(4)[1], wait=1)
    assert [next(stream)["id"], next(stream)["id"]] == ids(4)[2:]
    assert all(q.get("order") == "asc" for q in inbox.queries)


def test_following_updates_asks_for_the_handle_as_a_parameter() -> None:
    inbox = ScriptedInbox(ids(2))
    stream = client(inbox).follow("updates", after="", wait=1)
    assert next(stream)["id"] == ids(2)[0]
    assert inbox.queries[0]["as"] == "alice"


def test_a_failing_hub_is_retried_with_backoff_until_it_answers() -> None:
    inbox = ScriptedInbox(ids(1))
    failures = iter([503, 503])
    pauses: list[float] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        status = next(failures, None)
        return inbox(request) if status is None else httpx.Response(status)

    hub = Client(
        "http://hub.test", "t", httpx.MockTransport(flaky), handle="a", sleep=pauses.append
    )
    assert next(hub.follow(after="", wait=1))["id"] == ids(1)[0]
    assert pauses == [2.0, 4.0]


def test_a_hub_that_keeps_failing_ends_the_follow() -> None:
    pauses: list[float] = []
    hub = Client(
        "http://hub.test",
        "t",
        httpx.MockTransport(lambda _r: httpx.Response(500)),
        handle="a",
        sleep=pauses.append,
    )
    with pytest.raises(ServerError):
        next(hub.follow(after="", wait=1))
    assert len(pauses) == 9 and max(pauses) == 60


def test_a_refusal_is_not_retried() -> None:
    hub = Client("http://hub.test", "t", httpx.MockTransport(lambda _r: httpx.Response(404)))
    with pytest.raises(NotFound):
        next(hub.follow(handle="nobody", after="", wait=1))
