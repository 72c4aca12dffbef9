"""Every failure is rendered in the one error envelope."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter

from tests.fixtures.hub import HubHarness

pytestmark = pytest.mark.anyio


def assert_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"code", "message", "hint"}
    assert error["code"] == code and error["message"] and error["hint"]


async def test_unknown_route_and_wrong_method(hub: HubHarness) -> None:
    assert_envelope(await hub.client.get("/v1/nowhere"), 404, "not_found")
    assert_envelope(await hub.client.delete("/v1/me"), 405, "method_not_allowed")


async def test_malformed_json_and_bad_query(hub: HubHarness) -> None:
    broken = await hub.client.post(
        "/v1/agents/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_envelope(broken, 422, "invalid")
    assert_envelope(await hub.client.get("/v1/agents", params={"limit": 0}), 422, "invalid")
    assert_envelope(await hub.client.get("/v1/agents", params={"channel": "x"}), 422, "invalid")


async def test_unexpected_exceptions_become_a_500_envelope(hub: HubHarness) -> None:
    router = APIRouter()

    @router.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    hub.app.include_router(router)
    transport = httpx.ASGITransport(app=hub.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        response = await client.get("/v1/boom")
    assert_envelope(response, 500, "internal")
    assert "kaboom" not in response.text
