"""`GET /v1` describes the hub."""

from __future__ import annotations

import pytest

from tests.fixtures.hub import HubHarness

pytestmark = pytest.mark.anyio


async def test_self_description_lists_routes_and_the_challenge(hub: HubHarness) -> None:
    data = (await hub.client.get("/v1")).json()
    assert data["challenge"]["score_field"] == "tps"
    assert data["challenge"]["order"] == "desc"
    routes = {(r["method"], r["path"]) for r in data["routes"]}
    assert {("POST", "/v1/agents/register"), ("GET", "/v1/me")} <= routes
    assert all(r["summary"] for r in data["routes"])
    assert "watching" in data["conventions"]
