"""Posting and reading the board: stamps, mentions, replies, broadcasts, size caps."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from swarmlab.db.models import Event
from swarmlab.domain.ids import ID_RE
from tests.fixtures.hub import HubHarness

pytestmark = pytest.mark.anyio


async def test_the_server_stamps_author_time_and_id(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    response = await hub.client.post(
        "/v1/messages", json={"body": "plan: try int4", "type": "plan"}, headers=alice.headers
    )
    assert response.status_code == 201
    posted = response.json()
    assert ID_RE.fullmatch(posted["id"]) and posted["id"].endswith("_alice.md")
    assert posted["author"] == "alice" and posted["filename"] == posted["id"]
    assert posted["mentions_delivered"] == []
    fetched = (await hub.client.get(f"/v1/messages/{posted['id']}")).json()
    assert fetched["body"] == "plan: try int4" and fetched["type"] == "plan"


async def test_clients_cannot_set_author_or_id(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    forged = {"body": "hi", "author": "bob", "id": "20260101-000000-000_bob.md"}
    response = await hub.client.post("/v1/messages", json=forged, headers=alice.headers)
    assert response.status_code == 422


async def test_ids_are_unique_and_chronological(hub: HubHarness) -> None:
    members = [await hub.register(name) for name in ("zed", "amy")]
    posted = []
    for i in range(6):
        who = members[i % 2]
        r = await hub.client.post("/v1/messages", json={"body": f"m{i}"}, headers=who.headers)
        posted.append(r.json()["id"])
    assert posted == sorted(posted) and len(set(posted)) == 6
    listing = (await hub.client.get("/v1/messages", params={"order": "asc"})).json()
    assert [m["id"] for m in listing["items"]] == posted


async def test_mentions_and_ref_authors_reach_inboxes(hub: HubHarness) -> None:
    alice, _, carol = [await hub.register(n) for n in ("alice", "bob", "carol")]
    first = await hub.client.post("/v1/messages", json={"body": "idea"}, headers=carol.headers)
    body = {"body": "@bob @ghost @alice see this", "refs": first.json()["id"]}
    reply = (await hub.client.post("/v1/messages", json=body, headers=alice.headers)).json()
    assert reply["mentions_delivered"] == ["bob", "carol"]
    bob_inbox = (await hub.client.get("/v1/inbox/bob")).json()
    assert [(m["id"], m["reasons"]) for m in bob_inbox["items"]] == [(reply["id"], ["mention"])]
    carol_inbox = (await hub.client.get("/v1/inbox/carol")).json()
    assert carol_inbox["items"][0]["reasons"] == ["ref"]
    assert (await hub.client.get("/v1/inbox/alice")).json()["items"] == []


async def test_refs_must_exist(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    body = {"body": "re", "refs": "20260101-000000-000_bob.md"}
    response = await hub.client.post("/v1/messages", json=body, headers=alice.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_message"


async def test_only_organizers_broadcast(hub: HubHarness) -> None:
    alice, _ = await hub.register("alice"), await hub.register("bob")
    denied = await hub.client.post(
        "/v1/messages", json={"body": "all!", "broadcast": True}, headers=alice.headers
    )
    assert denied.status_code == 403
    sent = await hub.client.post(
        "/v1/messages",
        json={"body": "Rules update", "broadcast": True},
        headers=hub.organizer.headers,
    )
    assert sorted(sent.json()["mentions_delivered"]) == ["alice", "bob"]
    item = (await hub.client.get("/v1/inbox/bob")).json()["items"][0]
    assert item["reasons"] == ["broadcast"] and item["broadcast"] is True


async def test_posting_needs_a_token_and_a_participant(hub: HubHarness) -> None:
    assert (await hub.client.post("/v1/messages", json={"body": "x"})).status_code == 401


async def test_oversized_empty_and_badly_typed_messages(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    cap = hub.app.state.hub.spec.limits.message_bytes
    big = await hub.client.post(
        "/v1/messages", json={"body": "x" * (cap + 1)}, headers=alice.headers
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
    empty = await hub.client.post("/v1/messages", json={"body": "  "}, headers=alice.headers)
    assert empty.status_code == 422
    typed = await hub.client.post(
        "/v1/messages", json={"body": "x", "type": "Big Type"}, headers=alice.headers
    )
    assert typed.status_code == 422


async def test_list_grammar_filters_and_pages(hub: HubHarness) -> None:
    alice, bob = await hub.register("alice"), await hub.register("bob")
    for who, text, kind in [(alice, "KV cache", "plan"), (bob, "int4 speed", "note")]:
        await hub.client.post(
            "/v1/messages", json={"body": text, "type": kind}, headers=who.headers
        )
    await hub.client.post("/v1/messages", json={"body": "more kv"}, headers=bob.headers)
    by_q = (await hub.client.get("/v1/messages", params={"q": "kv"})).json()
    assert [m["body"] for m in by_q["items"]] == ["more kv", "KV cache"]
    by_agent = (
        await hub.client.get("/v1/messages", params={"agent": "bob", "type": "note"})
    ).json()
    assert by_agent["matched"] == 2
    first = (await hub.client.get("/v1/messages", params={"limit": 2})).json()
    assert first["count"] == 2 and first["matched"] == 3 and first["next"]
    rest = (
        await hub.client.get("/v1/messages", params={"limit": 2, "before": first["next"]})
    ).json()
    assert rest["count"] == 1 and rest["next"] is None and rest["matched"] == 3
    assert rest["items"][0]["body"] == "KV cache"


async def test_unknown_message_is_404(hub: HubHarness) -> None:
    assert (await hub.client.get("/v1/messages/nope.md")).status_code == 404


async def test_concurrent_posts_commit_in_id_order(hub: HubHarness) -> None:
    """Ids are allocated under the record lock: parallel posts get unique, ordered ids whose
    order is also the order of their events, so a cursor never skips a late commit."""
    members = [await hub.register(f"p{i}") for i in range(4)]
    posts = [
        hub.client.post("/v1/messages", json={"body": f"m{n}"}, headers=members[n % 4].headers)
        for n in range(24)
    ]
    answers = await asyncio.gather(*posts)
    assert {a.status_code for a in answers} == {201}
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == len(ids)
    with hub.app.state.hub.db.read() as session:
        refs = session.scalars(select(Event.ref).where(Event.kind == "message").order_by(Event.id))
        assert list(refs) == sorted(ids)
