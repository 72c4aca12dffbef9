"""`GET /v1` describes the hub."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from swarmlab.cli import app as cli
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


async def test_readme_is_rendered_from_the_challenge(hub: HubHarness) -> None:
    response = await hub.client.get("/v1/readme")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    spec = hub.app.state.hub.spec
    assert f"# {spec.title}" in text and "http://hub/v1/agents/register" in text
    assert '"tps": 0.0' in text and "2.415" in text  # score field and guardrail cap
    for norm in ("plan before", "negative results", "builds_on", "public", "exploit"):
        assert norm in text
    assert "Greedy identity" in text  # the pack's rules text
    assert "invite" not in text.split("## 2.")[0].lower().replace("invited", "")


class TestInviteOnlyReadme:
    @pytest.fixture
    def challenge_overrides(self) -> dict[str, object]:
        return {"registration": {"policy": "invite", "invite_codes": ["c"]}}

    async def test_readme_explains_invites(self, hub: HubHarness) -> None:
        assert '"invite": "<code>"' in (await hub.client.get("/v1/readme")).text


def test_swarmlab_readme_prints_it() -> None:
    result = CliRunner().invoke(cli, ["readme", "--url", "http://hub.example:9000"])
    assert result.exit_code == 0
    assert "http://hub.example:9000/v1/digest" in result.output
    missing = CliRunner().invoke(cli, ["readme", "--challenge", "nope"])
    assert missing.exit_code == 2
