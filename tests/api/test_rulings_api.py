"""Reports, rulings and verdict writes over ASGI."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from swarmlab.api.jobs_hooks import HubVerdicts
from swarmlab.api.settings import HubSettings
from swarmlab.db.models import Result, Verdict
from swarmlab.domain.verification import Check, VerdictStatus
from swarmlab.domain.verification import Verdict as Decision
from tests.fixtures.hub import HubHarness
from tests.fixtures.jobs import add_result

pytestmark = pytest.mark.anyio


@pytest.fixture
def hub_settings(hub_settings: HubSettings) -> HubSettings:
    return hub_settings.model_copy(update={"executor": "none"})


def verification(hub: HubHarness, result_id: str) -> tuple[str, str, list[str]]:
    db = hub.app.state.hub.db
    with db.read() as session:
        result = session.get(Result, result_id)
        assert result is not None
        reasons = list(
            session.scalars(select(Verdict.reason).where(Verdict.result_id == result_id))
        )
        return result.verification, result.verification_source, reasons


async def test_a_report_stays_private_until_a_ruling_invalidates_what_it_names(
    hub: HubHarness,
) -> None:
    ada = await hub.register("ada")
    bob = await hub.register("bob")
    gamed = add_result(hub.app.state.hub.db, "bob", 999.0, verification="valid")
    filed = await hub.client.post(
        "/v1/reports",
        json={
            "title": "Teacher-forced PPL",
            "text": "PPL ignores decode drift",
            "results": [gamed],
        },
        headers=ada.headers,
    )
    assert filed.status_code == 201
    assert (await hub.client.get("/v1/reports", headers=bob.headers)).json()["count"] == 0
    seen = await hub.client.get("/v1/reports", headers=hub.organizer.headers)
    assert [r["id"] for r in seen.json()["items"]] == ["report-1"]
    body: dict[str, Any] = {
        "title": "Free-running PPL",
        "text": "Perplexity is measured on the entry's own greedy decode.",
        "effective_at": "2026-06-02T00:00:00Z",
        "affects": [gamed],
        "reports": ["report-1"],
    }
    denied = await hub.client.post("/v1/rulings", json=body, headers=ada.headers)
    assert denied.status_code == 403
    ruling = await hub.client.post("/v1/rulings", json=body, headers=hub.organizer.headers)
    assert ruling.status_code == 201, ruling.text
    assert ruling.json()["id"] == "ruling-1"
    assert verification(hub, gamed) == ("invalid", "organizer", ["ruling-1: Free-running PPL"])
    public = (await hub.client.get("/v1/reports")).json()["items"]
    assert [(r["id"], r["ruling"]) for r in public] == [("report-1", "ruling-1")]
    listed = (await hub.client.get("/v1/rulings")).json()["items"]
    assert [r["title"] for r in listed] == ["Free-running PPL"]
    inbox = (await hub.client.get("/v1/inbox/bob", headers=bob.headers)).json()["items"]
    [announced] = [m for m in inbox if m["type"] == "ruling"]
    assert (announced["author"], announced["reasons"]) == ("organizer", ["broadcast"])
    assert "Ruling ruling-1: Free-running PPL" in announced["body"] and gamed in announced["body"]
    readme = (await hub.client.get("/v1/readme")).text
    assert "**ruling-1: Free-running PPL**" in readme


async def test_a_ruling_naming_an_unknown_result_is_404(hub: HubHarness) -> None:
    body = {
        "title": "t",
        "text": "x",
        "effective_at": "2026-06-02T00:00:00Z",
        "affects": ["r-nope"],
    }
    response = await hub.client.post("/v1/rulings", json=body, headers=hub.organizer.headers)
    assert response.status_code == 404
    assert (await hub.client.get("/v1/rulings")).json()["count"] == 0


async def test_automatic_verdicts_never_overwrite_an_organizers(hub: HubHarness) -> None:
    await hub.register("ada")
    core = hub.app.state.hub
    result = add_result(core.db, "ada", 100.0)
    sink = HubVerdicts(core)
    valid = Decision(VerdictStatus.valid, None, "re-run 99", 0.01)
    assert sink.record(result, valid, {"job": "job-1"})
    assert verification(hub, result)[:2] == ("valid", "auto")
    body = {"title": "t", "text": "x", "effective_at": "2026-06-02T00:00:00Z", "affects": [result]}
    await hub.client.post("/v1/rulings", json=body, headers=hub.organizer.headers)
    late = Decision(VerdictStatus.valid, None, "re-run again", 0.0)
    assert not sink.record(result, late, {})
    status, source, reasons = verification(hub, result)
    board = (await hub.client.get("/v1/messages", params={"agent": "verifier"})).json()["items"]
    assert [m["body"].split(" ")[0] for m in board] == ["@ada"]
    assert (status, source) == ("invalid", "organizer")
    assert reasons == ["re-run 99", "ruling-1: t"]
    diverged = Decision(VerdictStatus.invalid, Check.identity, "prompt p, token 3", 0.0)
    assert not sink.record(result, diverged, {})
