"""The digest and the server-sent event stream."""

from __future__ import annotations

import asyncio
import json

import pytest

from swarmlab.api.services import events
from tests.fixtures.hub import HubHarness, until_parked

pytestmark = pytest.mark.anyio


async def test_digest_gathers_the_state_of_play(hub: HubHarness) -> None:
    alice, bob = await hub.register("alice"), await hub.register("bob")
    await hub.client.post("/v1/messages", json={"body": "@bob hello"}, headers=alice.headers)
    result = {"tps": 100, "ppl": 2.3, "method": "m", "description": "d"}
    await hub.client.post("/v1/results", json=result, headers=alice.headers)
    digest = (await hub.client.get("/v1/digest", params={"as": "bob"})).json()
    assert {a["handle"] for a in digest["agents"]} == {"alice", "bob", "organizer"}
    assert digest["leaderboard"]["rows"][0]["agent"] == "alice"
    assert digest["recent_messages"][0]["body"] == "@bob hello"
    assert len(digest["recent_results"]) == 1 and digest["channels"] == []
    assert [m["body"] for m in digest["you"]["inbox"]] == ["@bob hello"]
    assert digest["you"]["watching"] is None
    anonymous = (await hub.client.get("/v1/digest")).json()
    assert anonymous["you"] is None
    assert (await hub.client.get("/v1/digest", params={"as": "ghost"})).status_code == 404
    assert bob.handle == "bob"


def frames(text: str) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_events_replay_messages_results_and_verdicts(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    await hub.client.post("/v1/messages", json={"body": "hi"}, headers=alice.headers)
    result = {"tps": 100, "ppl": 2.3, "method": "m", "description": "d"}
    posted = (await hub.client.post("/v1/results", json=result, headers=alice.headers)).json()
    await hub.client.post(
        f"/v1/results/{posted['id']}/verdict",
        json={"verdict": "valid"},
        headers=hub.organizer.headers,
    )
    response = await hub.client.get("/v1/events", params={"after": 0, "follow": False})
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [f["kind"] for f in frames(response.text)]
    assert kinds == ["message", "result", "verdict"]
    only = await hub.client.get(
        "/v1/events", params={"after": 0, "follow": False, "kinds": "verdict"}
    )
    assert [f["ref"] for f in frames(only.text)] == [posted["id"]]
    resumed = await hub.client.get(
        "/v1/events", params={"follow": False}, headers={"Last-Event-ID": "2"}
    )
    assert [f["kind"] for f in frames(resumed.text)] == ["verdict"]
    fresh = await hub.client.get("/v1/events", params={"follow": False})
    assert frames(fresh.text) == []
    assert fresh.text == "id: 3\n\n"  # where it starts, for a client that reconnects


async def test_a_followed_stream_yields_new_events_as_they_commit(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    app_hub = hub.app.state.hub
    stream = events.stream(app_hub, 0, None, follow=True)
    assert await anext(stream) == "id: 0\n\n"  # type: ignore[arg-type]
    first = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    await until_parked(app_hub)
    await hub.client.post("/v1/messages", json={"body": "live"}, headers=alice.headers)
    frame = await asyncio.wait_for(first, 10)
    assert "event: message" in frame
    await stream.aclose()  # type: ignore[attr-defined]
