"""Channels: creation with an announcement, membership, notify levels, the feed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.hub import HubHarness, Member

pytestmark = pytest.mark.anyio


async def create(hub: HubHarness, who: Member, name: str = "kv-cache") -> dict[str, Any]:
    response = await hub.client.post(
        "/v1/channels", json={"name": name, "theme": "KV layouts"}, headers=who.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_creating_announces_on_the_main_board(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    channel = await create(hub, alice)
    board = (await hub.client.get("/v1/messages")).json()["items"]
    assert board[0]["id"] == channel["announcement"]
    assert board[0]["type"] == "channel" and "#kv-cache" in board[0]["body"]
    assert board[0]["channel"] is None
    listing = (await hub.client.get("/v1/channels")).json()["items"]
    assert listing == [
        channel | {"subscribers": 1, "messages": 0, "last_message": None}
        for channel in [{k: v for k, v in channel.items() if k != "announcement"}]
    ]


async def test_duplicate_and_bad_names(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await create(hub, alice)
    again = await hub.client.post(
        "/v1/channels", json={"name": "kv-cache", "theme": "x"}, headers=alice.headers
    )
    assert again.status_code == 409
    bad = await hub.client.post(
        "/v1/channels", json={"name": "KV Cache", "theme": "x"}, headers=alice.headers
    )
    assert bad.status_code == 422


async def test_posting_subscribes_and_notify_all_feeds_updates(hub: HubHarness) -> None:
    alice, bob, carol = [await hub.register(n) for n in ("alice", "bob", "carol")]
    await create(hub, alice)
    body = {"body": "int8 KV works", "channel": "kv-cache"}
    first = (await hub.client.post("/v1/messages", json=body, headers=bob.headers)).json()
    members = (await hub.client.get("/v1/channels")).json()["items"][0]
    assert members["subscribers"] == 2 and members["last_message"] == first["id"]
    # alice (mentions level) gets nothing in updates; after switching to all she does
    assert (await hub.client.get("/v1/updates", params={"as": "alice"})).json()["items"] == []
    sub = await hub.client.post(
        "/v1/channels/kv-cache/subscribe", json={"notify": "all"}, headers=alice.headers
    )
    assert sub.json() == {
        "channel": "kv-cache",
        "handle": "alice",
        "notify": "all",
        "subscribed": True,
    }
    updates = (await hub.client.get("/v1/updates", params={"as": "alice"})).json()
    assert [(i["id"], i["reasons"]) for i in updates["items"]] == [
        (first["id"], ["channel:kv-cache"])
    ]
    feed = (await hub.client.get("/v1/channels/feed", params={"as": "carol"})).json()
    assert feed["items"] == []
    await hub.client.post("/v1/channels/kv-cache/subscribe", headers=carol.headers)
    feed = (await hub.client.get("/v1/channels/feed", params={"as": "carol"})).json()
    assert [i["id"] for i in feed["items"]] == [first["id"]]


async def test_subscribe_and_unsubscribe_are_idempotent(hub: HubHarness) -> None:
    alice, bob = await hub.register("alice"), await hub.register("bob")
    await create(hub, alice)
    for _ in range(2):
        r = await hub.client.post("/v1/channels/kv-cache/subscribe", json={}, headers=bob.headers)
        assert r.status_code == 200 and r.json()["notify"] == "mentions"
    for _ in range(2):
        r = await hub.client.post("/v1/channels/kv-cache/unsubscribe", headers=bob.headers)
        assert r.json()["subscribed"] is False
    assert (await hub.client.get("/v1/channels")).json()["items"][0]["subscribers"] == 1
    bad_level = await hub.client.post(
        "/v1/channels/kv-cache/subscribe", json={"notify": "some"}, headers=bob.headers
    )
    assert bad_level.status_code == 422


async def test_channel_messages_and_unknown_channels(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await create(hub, alice)
    await hub.client.post(
        "/v1/messages", json={"body": "in", "channel": "kv-cache"}, headers=alice.headers
    )
    await hub.client.post("/v1/messages", json={"body": "out"}, headers=alice.headers)
    inside = (await hub.client.get("/v1/channels/kv-cache/messages")).json()
    assert [m["body"] for m in inside["items"]] == ["in"]
    assert (await hub.client.get("/v1/channels/nope/messages")).status_code == 404
    assert (
        await hub.client.post("/v1/channels/nope/subscribe", headers=alice.headers)
    ).status_code == 404
    lost = await hub.client.post(
        "/v1/messages", json={"body": "x", "channel": "nope"}, headers=alice.headers
    )
    assert lost.status_code == 404 and lost.json()["error"]["code"] == "unknown_channel"
