"""docs/hub.md documents every route and every setting (the docs cannot fall behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmlab.api import options
from tests.fixtures.hub import HubHarness

DOC = Path(__file__).resolve().parents[2] / "docs" / "hub.md"


@pytest.mark.anyio
@pytest.mark.parametrize("hub_db_url", ["sqlite"], indirect=True)
async def test_every_route_is_documented(hub: HubHarness) -> None:
    text = DOC.read_text(encoding="utf-8")
    routes = (await hub.client.get("/v1")).json()["routes"]
    missing = [
        f"{r['method']} {r['path']}" for r in routes if f"`{r['method']} {r['path']}" not in text
    ]
    assert missing == []


@pytest.mark.parametrize("option", options.ALL_OPTIONS, ids=lambda o: o.name)
def test_every_setting_is_documented(option: options.Option[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"`{option.env}`" in text
    if option in options.SERVE_OPTIONS:
        assert f"`{option.flag}`" in text
