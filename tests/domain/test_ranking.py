"""The leaderboard rule."""

from __future__ import annotations

from swarmlab.domain.ranking import Candidate, rank


def cand(rid: str, agent: str, score: float, **kw: object) -> Candidate:
    fields: dict[str, object] = {
        "guard": 2.0,
        "status": "agent-run",
        "verification": "pending",
        "withdrawn": False,
    } | kw
    return Candidate(result_id=rid, agent=agent, score=score, **fields)  # type: ignore[arg-type]


def ids_of(ranking: object) -> list[str]:
    return [row.candidate.result_id for row in ranking.rows]  # type: ignore[attr-defined]


def test_desc_order_best_per_agent_and_ties_to_the_earlier() -> None:
    results = [cand("r1", "a", 10), cand("r2", "b", 12), cand("r3", "c", 12), cand("r4", "a", 11)]
    ranking = rank(results, "desc")
    assert ids_of(ranking) == ["r2", "r3", "r4"]
    assert [row.rank for row in ranking.rows] == [1, 2, 3]
    assert ranking.excluded == {"not_best_of_agent": 1}


def test_asc_order_and_all_results_per_agent() -> None:
    results = [cand("r1", "a", 3.0), cand("r2", "a", 1.0), cand("r3", "b", 2.0)]
    assert ids_of(rank(results, "asc", best_per_agent=False)) == ["r2", "r3", "r1"]


def test_exclusions_are_counted_by_reason() -> None:
    results = [
        cand("ok", "a", 1),
        cand("neg", "b", 99, status="negative"),
        cand("gone", "c", 99, withdrawn=True),
        cand("bad", "d", 99, verification="invalid"),
        cand("over", "e", 99, guard=3.0),
        cand("noguard", "f", 99, guard=None),
    ]
    ranking = rank(results, "desc", guard_cap=2.5)
    assert ids_of(ranking) == ["ok"]
    assert ranking.excluded == {
        "not_agent_run": 1,
        "withdrawn": 1,
        "invalid": 1,
        "over_guardrail": 2,
    }


def test_verification_filter_selects_states() -> None:
    results = [cand("v", "a", 1, verification="valid"), cand("p", "b", 2)]
    assert ids_of(rank(results, "desc", verification={"valid"})) == ["v"]
    assert rank(results, "desc", verification={"valid"}).excluded == {"pending": 1}
