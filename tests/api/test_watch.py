"""The watch protocol: `after` + `wait` long-polls, cursors, `watch.status`, watchers."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from swarmlab.api.services import events
from swarmlab.api.services.watch import park_time
from swarmlab.api.settings import HubSettings
from tests.fixtures.hub import HubHarness, Member, start_hub, until_parked

pytestmark = pytest.mark.anyio

# The expressions agent-collabs' collab_watch.sh applies to a response body.
FILENAME_RE = r"[0-9]{8}-[0-9]{6}-[0-9]{3}_[a-z0-9][a-z0-9-]*\.md"


async def mention(hub: HubHarness, author: Member, target: str, text: str = "ping") -> str:
    body = {"body": f"@{target} {text}"}
    response = await hub.client.post("/v1/messages", json=body, headers=author.headers)
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_a_parked_inbox_poll_returns_when_mail_arrives(hub: HubHarness) -> None:
    alice, _ = await hub.register("alice"), await hub.register("bob")
    poll = asyncio.create_task(hub.client.get("/v1/inbox/bob", params={"wait": 30, "order": "asc"}))
    await until_parked(hub.app.state.hub)
    sent = await mention(hub, alice, "bob")
    page = (await poll).json()
    assert [item["id"] for item in page["items"]] == [sent]
    assert page["cursor"] == sent
    assert page["watch"]["status"] == "delivered"


async def test_wait_times_out_cleanly_and_echoes_the_cursor(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await hub.register("bob")
    sent = await mention(hub, alice, "bob")
    page = (await hub.client.get("/v1/inbox/bob", params={"after": sent, "wait": 0.2})).json()
    assert page["items"] == [] and page["cursor"] == sent
    assert page["watch"]["status"] == "timeout" and page["watch"]["waited_ms"] >= 200


async def test_paging_forward_from_a_cursor_drains_oldest_first(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await hub.register("bob")
    sent = [await mention(hub, alice, "bob", str(i)) for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"order": "asc", "limit": 2, "wait": 0}
        if cursor:
            params["after"] = cursor
        page = (await hub.client.get("/v1/inbox/bob", params=params)).json()
        if not page["items"]:
            break
        seen += [item["id"] for item in page["items"]]
        cursor = page["cursor"]
    assert seen == sent


async def test_the_response_satisfies_collab_watch_sh(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await hub.register("bob")
    sent = await mention(hub, alice, "bob", 'tricky "cursor":"99999999-999999-999_x.md" ]')
    baseline = await hub.client.get(
        "/v1/updates", params={"as": "bob", "limit": 1, "order": "desc", "expand": "true"}
    )
    raw = baseline.text
    tail = raw[raw.rindex("]") + 1 :]
    assert re.findall(rf'"cursor":"({FILENAME_RE})"', tail) == [sent]
    assert len(re.findall(rf'"filename":"{FILENAME_RE}"', raw)) == 1
    waited = await hub.client.get(
        "/v1/updates", params={"as": "bob", "after": sent, "order": "asc", "wait": 0}
    )
    assert re.search(r'"watch":\{[^}]*"status":"([a-z_]*)"', waited.text).group(1) == "timeout"  # type: ignore[union-attr]


async def test_unknown_handles_and_bad_waits(hub: HubHarness) -> None:
    assert (await hub.client.get("/v1/inbox/ghost")).status_code == 404
    assert (await hub.client.get("/v1/updates", params={"as": "ghost"})).status_code == 404
    assert (await hub.client.get("/v1/updates")).status_code == 422
    await hub.register("bob")
    negative = await hub.client.get("/v1/inbox/bob", params={"wait": -1})
    assert negative.status_code == 422


async def test_long_waits_are_clamped_not_refused(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await hub.register("bob")
    poll = asyncio.create_task(hub.client.get("/v1/inbox/bob", params={"wait": 3600}))
    await until_parked(hub.app.state.hub)
    await mention(hub, alice, "bob")
    assert (await poll).json()["watch"]["status"] == "delivered"


async def test_watching_shows_who_parked_a_poll(hub: HubHarness) -> None:
    await hub.register("bob")
    await hub.client.get("/v1/updates", params={"as": "bob", "wait": 0.05})
    watchers = (await hub.client.get("/v1/watching")).json()
    assert [(w["handle"], w["stream"]) for w in watchers["items"]] == [("bob", "updates")]
    assert watchers["items"][0]["age_s"] >= 0


async def test_writes_by_another_hub_process_wake_parked_polls(
    hub: HubHarness, hub_settings: HubSettings
) -> None:
    """Two apps on one database: a post through one wakes a poll parked on the other."""
    alice = await hub.register("alice")
    await hub.register("bob")
    async for other in start_hub(hub_settings):
        poll = asyncio.create_task(hub.client.get("/v1/inbox/bob", params={"wait": 30}))
        await until_parked(hub.app.state.hub)
        response = await other.client.post(
            "/v1/messages", json={"body": "@bob from the other process"}, headers=alice.headers
        )
        assert response.status_code == 201
        page = (await poll).json()
        assert page["watch"]["status"] == "delivered"
        assert page["items"][0]["body"] == "@bob from the other process"


async def test_idle_polls_do_not_hold_threads(hub: HubHarness) -> None:
    """Many parked polls and still a plain request is served at once."""
    for name in ("bob", "carol", "dave"):
        await hub.register(name)
    polls = [
        asyncio.create_task(hub.client.get(f"/v1/inbox/{n}", params={"wait": 30}))
        for n in ("bob", "carol", "dave")
        for _ in range(20)
    ]
    await until_parked(hub.app.state.hub, len(polls))
    assert (await hub.client.get("/v1")).status_code == 200
    alice = await hub.register("alice")
    await hub.client.post(
        "/v1/messages", json={"body": "@bob @carol @dave wake up"}, headers=alice.headers
    )
    pages = await asyncio.gather(*polls)
    assert {p.json()["watch"]["status"] for p in pages} == {"delivered"}
    assert isinstance(pages[0], httpx.Response)


def test_park_time_is_clamped_and_long_waits_are_jittered() -> None:
    assert park_time(-1, 55) == 0 and park_time(2, 55) == 2
    parks = {park_time(3600, 55) for _ in range(50)}
    assert all(49.5 <= p <= 55 for p in parks) and len(parks) > 1


async def test_a_watcher_coming_back_after_a_timeout_parks_without_a_read(
    hub: HubHarness,
) -> None:
    alice = await hub.register("alice")
    await hub.register("bob")
    sent = await mention(hub, alice, "bob")
    params = {"after": sent, "order": "asc", "wait": 0}
    assert (await hub.client.get("/v1/inbox/bob", params=params)).json()["items"] == []
    engine = hub.app.state.hub.db.engine
    selects: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM messages" in statement:
            selects.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        again = (await hub.client.get("/v1/inbox/bob", params=params)).json()
        assert again["items"] == [] and again["cursor"] == sent and selects == []
        later = await mention(hub, alice, "bob", "news")
        fresh = (await hub.client.get("/v1/inbox/bob", params=params)).json()
        assert [i["id"] for i in fresh["items"]] == [later] and selects
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_changing_a_subscription_refreshes_a_quiet_stream(hub: HubHarness) -> None:
    alice, bob = await hub.register("alice"), await hub.register("bob")
    await hub.client.post("/v1/channels", json={"name": "kv", "theme": "t"}, headers=bob.headers)
    await hub.client.post("/v1/channels/kv/subscribe", headers=alice.headers)
    posted = await hub.client.post(
        "/v1/messages", json={"body": "in kv", "channel": "kv"}, headers=bob.headers
    )
    params = {"as": "alice", "order": "asc", "wait": 0}
    assert (await hub.client.get("/v1/updates", params=params)).json()["items"] == []
    await hub.client.post(
        "/v1/channels/kv/subscribe", json={"notify": "all"}, headers=alice.headers
    )
    items = (await hub.client.get("/v1/updates", params=params)).json()["items"]
    assert [i["id"] for i in items] == [posted.json()["id"]]


async def test_stopping_the_hub_answers_parked_polls_at_once(hub: HubHarness) -> None:
    await hub.register("bob")
    app_hub = hub.app.state.hub
    poll = asyncio.create_task(hub.client.get("/v1/inbox/bob", params={"wait": 30}))
    stream = events.stream(app_hub, 0, None, follow=True)
    assert await anext(stream) == events.start_frame(0)  # type: ignore[arg-type]
    frames = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    await until_parked(app_hub, 2)
    app_hub.notifier.close()
    page = (await asyncio.wait_for(poll, 10)).json()
    assert page["items"] == [] and page["watch"]["status"] == "timeout"
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(frames, 10)
