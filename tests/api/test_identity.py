"""Registration, human invites, tokens and `GET /v1/me`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.hub import HubHarness

pytestmark = pytest.mark.anyio


async def test_register_returns_a_token_shown_once_and_me_names_it(hub: HubHarness) -> None:
    body = {"agent_id": "speedy", "model": "m1", "harness": "h1", "tools": ["bash"], "bio": "hi"}
    response = await hub.client.post("/v1/agents/register", json=body)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert data["agent_id"] == "speedy" and data["token"].startswith("swl_")
    me = await hub.client.get("/v1/me", headers={"Authorization": f"Bearer {data['token']}"})
    assert me.json() | {"created_at": None} == {
        "agent_id": "speedy",
        "handle": "speedy",
        "role": "agent",
        "model": "m1",
        "harness": "h1",
        "tools": ["bash"],
        "bio": "hi",
        "invited_by": None,
        "created_at": None,
    }
    profile = await hub.client.get("/v1/agents/speedy")
    assert "token" not in profile.json()


async def test_taken_ids_conflict(hub: HubHarness) -> None:
    await hub.register("twin")
    again = await hub.client.post(
        "/v1/agents/register", json={"agent_id": "twin", "model": "m", "harness": "h"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "handle_taken"


@pytest.mark.parametrize(
    ("agent_id", "code"),
    [("Bad_Id", "invalid_agent_id"), ("human-bob", "invalid_agent_id"), ("x" * 41, "invalid")],
)
async def test_bad_ids_are_refused_with_a_hint(hub: HubHarness, agent_id: str, code: str) -> None:
    response = await hub.client.post(
        "/v1/agents/register", json={"agent_id": agent_id, "model": "m", "harness": "h"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == code and error["hint"]


async def test_unknown_body_fields_are_refused(hub: HubHarness) -> None:
    body = {"agent_id": "a", "model": "m", "harness": "h", "tokn": "x"}
    response = await hub.client.post("/v1/agents/register", json=body)
    assert response.status_code == 422
    assert "tokn" in response.json()["error"]["message"]


async def test_me_needs_a_valid_token(hub: HubHarness) -> None:
    assert (await hub.client.get("/v1/me")).status_code == 401
    bad = await hub.client.get("/v1/me", headers={"Authorization": "Bearer swl_nope"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "unauthorized"
    basic = await hub.client.get("/v1/me", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    assert "Bearer" in basic.json()["error"]["hint"]


async def test_rotate_replaces_the_token(hub: HubHarness) -> None:
    agent = await hub.register("rotor")
    rotated = await hub.client.post("/v1/tokens/rotate", headers=agent.headers)
    assert rotated.status_code == 200
    fresh = {"Authorization": f"Bearer {rotated.json()['token']}"}
    assert (await hub.client.get("/v1/me", headers=agent.headers)).status_code == 401
    assert (await hub.client.get("/v1/me", headers=fresh)).json()["handle"] == "rotor"


async def test_organizer_revokes_and_others_cannot(hub: HubHarness) -> None:
    agent = await hub.register("rogue")
    other = await hub.register("bystander")
    denied = await hub.client.post("/v1/agents/rogue/revoke", headers=other.headers)
    assert denied.status_code == 403
    done = await hub.client.post("/v1/agents/rogue/revoke", headers=hub.organizer.headers)
    assert done.json() == {"handle": "rogue", "revoked": 1}
    assert (await hub.client.get("/v1/me", headers=agent.headers)).status_code == 401
    ghost = await hub.client.post("/v1/agents/ghost/revoke", headers=hub.organizer.headers)
    assert ghost.status_code == 404


async def test_organizers_invite_humans(hub: HubHarness) -> None:
    ada = await hub.human("ada")
    assert ada.handle == "human-ada"
    me = (await hub.client.get("/v1/me", headers=ada.headers)).json()
    assert me["role"] == "human" and me["invited_by"] == "organizer"
    agent = await hub.register("helper")
    denied = await hub.client.post("/v1/humans", json={"name": "eve"}, headers=agent.headers)
    assert denied.status_code == 403
    again = await hub.client.post("/v1/humans", json={"name": "ada"}, headers=hub.organizer.headers)
    assert again.status_code == 409


async def test_unknown_account_is_404(hub: HubHarness) -> None:
    response = await hub.client.get("/v1/agents/nobody")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_handle"


async def test_agents_listing_filters_by_role(hub: HubHarness) -> None:
    await hub.register("a1")
    await hub.human("bo")
    listing = (await hub.client.get("/v1/agents", params={"type": "human"})).json()
    assert [item["handle"] for item in listing["items"]] == ["human-bo"]
    everyone = (await hub.client.get("/v1/agents", params={"order": "asc"})).json()
    assert [i["handle"] for i in everyone["items"]] == ["a1", "human-bo", "organizer"]


class TestInviteOnly:
    @pytest.fixture
    def challenge_overrides(self) -> dict[str, Any]:
        return {"registration": {"policy": "invite", "invite_codes": ["let-me-in"]}}

    async def test_registration_needs_a_known_code(self, hub: HubHarness) -> None:
        body = {"agent_id": "newbie", "model": "m", "harness": "h"}
        refused = await hub.client.post("/v1/agents/register", json=body)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "invite_required"
        wrong = await hub.client.post("/v1/agents/register", json=body | {"invite": "guess"})
        assert wrong.status_code == 403
        ok = await hub.client.post("/v1/agents/register", json=body | {"invite": "let-me-in"})
        assert ok.status_code == 201
