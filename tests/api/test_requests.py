"""Cross-cutting request handling: rate limits, Idempotency-Key, the audit log, restarts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.datastructures import Headers

from swarmlab.api.idempotency import caller_key
from swarmlab.api.settings import HubSettings
from swarmlab.db import utcnow
from swarmlab.db.models import IdempotencyRecord
from tests.fixtures.hub import HubHarness, start_hub

pytestmark = pytest.mark.anyio


class TestRateLimits:
    @pytest.fixture
    def challenge_overrides(self) -> dict[str, Any]:
        return {
            "rate_limits": {
                "messages_per_minute": 2,
                "messages_per_hour": 30,
                "writes_per_minute": 5,
                "channel_creates_per_hour": 1,
            }
        }

    async def test_messages_over_the_limit_get_429_with_retry_after(self, hub: HubHarness) -> None:
        alice = await hub.register("alice")
        for i in range(2):
            ok = await hub.client.post(
                "/v1/messages", json={"body": f"m{i}"}, headers=alice.headers
            )
            assert ok.status_code == 201
        refused = await hub.client.post("/v1/messages", json={"body": "m3"}, headers=alice.headers)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        bob = await hub.register("bob")  # limits are per handle
        assert (
            await hub.client.post("/v1/messages", json={"body": "hi"}, headers=bob.headers)
        ).status_code == 201
        organizer = hub.organizer.headers  # organizers are exempt
        for _ in range(3):
            r = await hub.client.post("/v1/messages", json={"body": "note"}, headers=organizer)
            assert r.status_code == 201

    async def test_channel_creation_and_writes_are_limited(self, hub: HubHarness) -> None:
        alice = await hub.register("alice")
        first = await hub.client.post(
            "/v1/channels", json={"name": "a", "theme": "x"}, headers=alice.headers
        )
        assert first.status_code == 201
        second = await hub.client.post(
            "/v1/channels", json={"name": "b", "theme": "x"}, headers=alice.headers
        )
        assert second.status_code == 429 and "retry-after" in second.headers
        statuses = [
            (await hub.client.post("/v1/channels/a/subscribe", headers=alice.headers)).status_code
            for _ in range(5)
        ]
        assert statuses[-1] == 429 and statuses[0] == 200

    async def test_limits_survive_a_restart(
        self, hub: HubHarness, hub_settings: HubSettings
    ) -> None:
        alice = await hub.register("alice")
        for i in range(2):
            await hub.client.post("/v1/messages", json={"body": f"m{i}"}, headers=alice.headers)
        async for restarted in start_hub(hub_settings):
            again = await restarted.client.post(
                "/v1/messages", json={"body": "after restart"}, headers=alice.headers
            )
            assert again.status_code == 429


async def test_a_retried_post_returns_the_first_answer(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    headers = alice.headers | {"Idempotency-Key": "k-1"}
    first = await hub.client.post("/v1/messages", json={"body": "once"}, headers=headers)
    retry = await hub.client.post("/v1/messages", json={"body": "once"}, headers=headers)
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["idempotency-replayed"] == "true"
    assert (await hub.client.get("/v1/messages")).json()["matched"] == 1
    elsewhere = await hub.client.post(
        "/v1/results",
        json={"tps": 1, "ppl": 2, "method": "m", "description": "d"},
        headers=headers,
    )
    assert elsewhere.status_code == 422
    assert elsewhere.json()["error"]["code"] == "idempotency_key_reused"


async def test_keys_are_per_caller_and_errors_other_than_5xx_are_kept(hub: HubHarness) -> None:
    alice, bob = await hub.register("alice"), await hub.register("bob")
    key = {"Idempotency-Key": "same"}
    a = await hub.client.post("/v1/messages", json={"body": "a"}, headers=alice.headers | key)
    b = await hub.client.post("/v1/messages", json={"body": "b"}, headers=bob.headers | key)
    assert a.json()["id"] != b.json()["id"]
    bad = {"Idempotency-Key": "bad"} | alice.headers
    first = await hub.client.post("/v1/messages", json={"body": ""}, headers=bad)
    again = await hub.client.post("/v1/messages", json={"body": ""}, headers=bad)
    assert first.status_code == again.status_code == 422


async def test_secrets_are_never_replayed(hub: HubHarness) -> None:
    key = {"Idempotency-Key": "reg-1"}
    body = {"agent_id": "alice", "model": "m", "harness": "h"}
    first = await hub.client.post("/v1/agents/register", json=body, headers=key)
    assert first.status_code == 201
    retry = await hub.client.post("/v1/agents/register", json=body, headers=key)
    assert retry.status_code == 409
    error = retry.json()["error"]
    assert error["code"] == "idempotency_secret_not_replayed"
    # The old token is lost, so the way out cannot need it.
    assert "new id" in error["hint"] and "rotate" not in error["hint"]
    assert first.json()["token"] not in retry.text


async def test_overlong_keys_are_refused(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    headers = alice.headers | {"Idempotency-Key": "k" * 201}
    response = await hub.client.post("/v1/messages", json={"body": "x"}, headers=headers)
    assert response.status_code == 422


async def test_every_write_is_audited_and_only_organizers_read_it(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await hub.client.post("/v1/messages", json={"body": "hi"}, headers=alice.headers)
    await hub.client.put("/v1/files/bob/x", content=b"x", headers=alice.headers)
    await hub.client.post("/v1/messages", json={"body": "anon"})
    assert (await hub.client.get("/v1/audit", headers=alice.headers)).status_code == 403
    assert (await hub.client.get("/v1/audit")).status_code == 401
    log = (
        await hub.client.get("/v1/audit", params={"order": "asc"}, headers=hub.organizer.headers)
    ).json()
    rows = [(e["actor"], e["method"], e["target"], e["status"]) for e in log["items"]]
    assert rows == [
        (None, "POST", "/v1/agents/register", 201),
        ("alice", "POST", "/v1/messages", 201),
        ("alice", "PUT", "/v1/files/bob/x", 403),
        (None, "POST", "/v1/messages", 401),
    ]
    assert log["items"][1]["route"] == "/v1/messages"
    assert log["items"][2]["client"]
    page = (
        await hub.client.get(
            "/v1/audit", params={"after": "2", "order": "asc"}, headers=hub.organizer.headers
        )
    ).json()
    assert [e["id"] for e in page["items"]] == [3, 4]
    bad = await hub.client.get("/v1/audit", params={"after": "x"}, headers=hub.organizer.headers)
    assert bad.status_code == 422


async def test_a_restarted_hub_has_everything(hub: HubHarness, hub_settings: HubSettings) -> None:
    alice, bob = await hub.register("alice"), await hub.register("bob")
    sent = (
        await hub.client.post("/v1/messages", json={"body": "@bob hi"}, headers=alice.headers)
    ).json()
    await hub.client.post("/v1/channels", json={"name": "kv", "theme": "t"}, headers=bob.headers)
    result = (
        await hub.client.post(
            "/v1/results",
            json={"tps": 5, "ppl": 2, "method": "m", "description": "d"},
            headers=alice.headers,
        )
    ).json()
    await hub.client.put("/v1/files/alice/notes.md", content=b"notes", headers=alice.headers)
    before = (await hub.client.get("/v1/digest", params={"as": "bob"})).json()
    async for restarted in start_hub(hub_settings):
        after = (await restarted.client.get("/v1/digest", params={"as": "bob"})).json()
        assert after == before
        assert (await restarted.client.get("/v1/me", headers=alice.headers)).json()[
            "handle"
        ] == "alice"
        inbox = (await restarted.client.get("/v1/inbox/bob")).json()
        assert [m["id"] for m in inbox["items"]] == [sent["id"]]
        assert (await restarted.client.get(f"/v1/results/{result['id']}")).status_code == 200
        assert (await restarted.client.get("/v1/files/alice/notes.md")).content == b"notes"
        later = (
            await restarted.client.post(
                "/v1/messages", json={"body": "later"}, headers=alice.headers
            )
        ).json()
        assert later["id"] > sent["id"]


async def test_idempotency_keys_expire_after_a_day(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    old = alice.headers | {"Idempotency-Key": "old"}
    await hub.client.post("/v1/messages", json={"body": "first"}, headers=old)
    db = hub.app.state.hub.db
    with db.write() as session:
        session.execute(update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=25)))
    fresh = alice.headers | {"Idempotency-Key": "fresh"}
    await hub.client.post("/v1/messages", json={"body": "second"}, headers=fresh)
    with db.read() as session:
        assert session.scalars(select(IdempotencyRecord.key)).all() == ["fresh"]


async def test_a_claim_the_hub_never_answered_is_reported_as_unknown(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    db = hub.app.state.hub.db
    with db.write() as session:  # what a hub that died mid-request leaves behind
        session.add(
            IdempotencyRecord(
                actor=caller_key(Headers(alice.headers)),
                key="lost",
                method="POST",
                path="/v1/messages",
                created_at=utcnow() - timedelta(minutes=11),
            )
        )
    headers = alice.headers | {"Idempotency-Key": "lost"}
    retry = await hub.client.post("/v1/messages", json={"body": "again"}, headers=headers)
    assert retry.status_code == 409
    assert retry.json()["error"]["code"] == "idempotency_outcome_unknown"
