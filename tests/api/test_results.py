"""Results, withdrawals, verdicts and the leaderboard."""

from __future__ import annotations

from typing import Any

import pytest

from swarmlab.api.errors import Conflict
from swarmlab.api.services.results import set_verdict
from tests.fixtures.hub import HubHarness, Member

pytestmark = pytest.mark.anyio


async def report(hub: HubHarness, who: Member, tps: float, **extra: Any) -> dict[str, Any]:
    body = {"tps": tps, "ppl": 2.3, "method": "m", "description": "d"} | extra
    response = await hub.client.post("/v1/results", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_result_is_stamped_and_self_reported(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    posted = await report(hub, alice, 212.5, kernel="triton")
    assert posted["agent"] == "alice" and posted["provenance"] == "self-reported"
    assert posted["tps"] == 212.5 and posted["score"] == 212.5 and posted["guard"] == 2.3
    assert posted["kernel"] == "triton" and posted["verification"] == "pending"
    fetched = (await hub.client.get(f"/v1/results/{posted['id']}")).json()
    assert fetched["verdicts"] == [] and fetched["builds_on"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ppl": 2.3, "method": "m", "description": "d"}, "missing_fields"),
        ({"tps": "fast", "ppl": 2.3, "method": "m", "description": "d"}, "invalid_result"),
        ({"tps": 1, "ppl": 2.3, "method": "", "description": "d"}, "missing_fields"),
        (
            {"tps": 1, "ppl": 2.3, "method": "m", "description": "d", "agent": "bob"},
            "invalid_result",
        ),
        ({"tps": 1, "ppl": 2.3, "method": "m", "description": "d", "x": [1]}, "invalid_result"),
        ({"tps": 1, "ppl": 2.3, "method": "m", "description": "d", "status": "won"}, "invalid"),
    ],
)
async def test_malformed_results_are_refused(
    hub: HubHarness, body: dict[str, Any], code: str
) -> None:
    alice = await hub.register("alice")
    response = await hub.client.post("/v1/results", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


async def test_builds_on_must_exist_and_is_kept(hub: HubHarness) -> None:
    alice, bob = await hub.register("alice"), await hub.register("bob")
    base = await report(hub, alice, 100)
    missing = await hub.client.post(
        "/v1/results",
        json={"tps": 1, "ppl": 2, "method": "m", "description": "d", "builds_on": ["nope.md"]},
        headers=bob.headers,
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_result"
    child = await report(hub, bob, 120, builds_on=[base["id"]])
    assert (await hub.client.get(f"/v1/results/{child['id']}")).json()["builds_on"] == [base["id"]]


async def test_leaderboard_ranks_best_per_agent_with_ties_to_the_earlier(hub: HubHarness) -> None:
    alice, bob, carol = [await hub.register(n) for n in ("alice", "bob", "carol")]
    a1 = await report(hub, alice, 100)
    await report(hub, alice, 90)
    b1 = await report(hub, bob, 100)
    await report(hub, carol, 500, status="negative")
    await report(hub, carol, 400, ppl=9.9)  # over the guardrail cap (2.3 x 1.05)
    board = (await hub.client.get("/v1/leaderboard")).json()
    assert board["score_field"] == "tps" and board["order"] == "desc"
    assert [(r["rank"], r["result_id"]) for r in board["rows"]] == [(1, a1["id"]), (2, b1["id"])]
    assert board["excluded"] == {
        "not_best_of_agent": 1,
        "not_agent_run": 1,
        "over_guardrail": 1,
    }
    row = board["rows"][0]
    assert set(row) >= {"rank", "agent", "score", "guard", "method", "verification"}
    everything = (await hub.client.get("/v1/leaderboard", params={"best_per_agent": False})).json()
    assert len(everything["rows"]) == 3
    top = (await hub.client.get("/v1/leaderboard", params={"limit": 1})).json()
    assert len(top["rows"]) == 1


async def test_withdrawal_by_author_or_organizer_only(hub: HubHarness) -> None:
    alice, bob = await hub.register("alice"), await hub.register("bob")
    mine = await report(hub, alice, 100)
    path = f"/v1/results/{mine['id']}/withdraw"
    denied = await hub.client.post(path, json={"reason": "mine now"}, headers=bob.headers)
    assert denied.status_code == 403
    done = await hub.client.post(path, json={"reason": "no credit given"}, headers=alice.headers)
    assert done.json()["withdrawn"] is True and done.json()["withdraw_reason"] == "no credit given"
    again = await hub.client.post(path, json={"reason": "x"}, headers=hub.organizer.headers)
    assert again.status_code == 409
    board = (await hub.client.get("/v1/leaderboard")).json()
    assert board["rows"] == [] and board["excluded"] == {"withdrawn": 1}
    assert (await hub.client.get("/v1/results")).json()["matched"] == 1
    ghost = await hub.client.post(
        "/v1/results/nope.md/withdraw", json={"reason": "x"}, headers=alice.headers
    )
    assert ghost.status_code == 404


async def test_verdicts_are_organizer_only_versioned_and_human_wins(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    posted = await report(hub, alice, 100)
    path = f"/v1/results/{posted['id']}/verdict"
    denied = await hub.client.post(path, json={"verdict": "valid"}, headers=alice.headers)
    assert denied.status_code == 403
    first = await hub.client.post(
        path,
        json={"verdict": "invalid", "note": "rerun 9% low", "expected_version": 0},
        headers=hub.organizer.headers,
    )
    assert first.json()["verification"] == "invalid" and first.json()["verification_version"] == 1
    stale = await hub.client.post(
        path, json={"verdict": "valid", "expected_version": 0}, headers=hub.organizer.headers
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    with pytest.raises(Conflict, match="human verdict"):
        set_verdict(hub.app.state.hub, posted["id"], "valid", by="verifier", source="auto")
    history = (await hub.client.get(f"/v1/results/{posted['id']}")).json()["verdicts"]
    assert [(v["verdict"], v["by"], v["version"]) for v in history] == [("invalid", "organizer", 1)]
    board = (await hub.client.get("/v1/leaderboard", params={"verification": "invalid"})).json()
    assert [r["result_id"] for r in board["rows"]] == [posted["id"]]
    bad = await hub.client.get("/v1/leaderboard", params={"verification": "maybe"})
    assert bad.status_code == 422


async def test_automatic_verdicts_apply_until_a_human_rules(hub: HubHarness) -> None:
    alice = await hub.register("alice")
    posted = await report(hub, alice, 100)
    result = set_verdict(hub.app.state.hub, posted["id"], "valid", by="verifier", source="auto")
    assert result.verification == "valid" and result.verification_source == "auto"
    board = (await hub.client.get("/v1/leaderboard", params={"verification": "valid"})).json()
    assert board["rows"][0]["verification"] == "valid"
