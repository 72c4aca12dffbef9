"""Results and the leaderboard."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import ConfigDict, Field
from sqlalchemy import select

from swarmlab.api.auth import Organizer
from swarmlab.api.errors import Invalid
from swarmlab.api.hub import HubDep
from swarmlab.api.jobs_hooks import measured_claim
from swarmlab.api.jobs_runtime import JobsDep
from swarmlab.api.listing import Listing, paginate
from swarmlab.api.ratelimit import Writer
from swarmlab.api.schemas import Body
from swarmlab.api.services import results
from swarmlab.db.models import Result
from swarmlab.domain.ranking import DEFAULT_VERIFICATION, VERIFICATION_STATES

router = APIRouter(prefix="/v1", tags=["results"])


class ResultRequest(Body):
    """The challenge's score and guardrail fields (and any other measured numbers) go at the
    top level next to these, e.g. `{"tps": 212.5, "ppl": 2.31, "method": ...}`."""

    model_config = ConfigDict(extra="allow")

    method: str = Field("", max_length=200, description="Short name of the approach.")
    status: Literal["agent-run", "negative"] = Field(
        "agent-run", description="`agent-run` ranks; `negative` logs a dead end."
    )
    description: str = Field("", max_length=4000, description="What was done, briefly.")
    builds_on: list[str] = Field(
        default_factory=list, max_length=50, description="Ids of results this builds on."
    )
    submission: str | None = Field(None, max_length=128, description="Submission id, if any.")
    job: str | None = Field(None, max_length=128, description="Job id that measured it, if any.")


class WithdrawRequest(Body):
    reason: str = Field(max_length=2000, description="Why; it stays on record.")


class VerdictRequest(Body):
    verdict: results.VerdictState
    note: str = Field("", max_length=2000)
    expected_version: int | None = Field(
        None, ge=0, description="Compare-and-set: the `verification_version` you read."
    )


@router.post("/results", status_code=201)
def post_result(body: ResultRequest, hub: HubDep, jobs: JobsDep, actor: Writer) -> dict[str, Any]:
    """Report a result; it is immutable and `self-reported` until a job measures it."""
    claim = results.Claim(
        fields=dict(body.model_extra or {}),
        method=body.method,
        status=body.status,
        description=body.description,
        builds_on=body.builds_on,
        submission=body.submission,
        job=body.job,
    )
    claim = measured_claim(hub, jobs.queue, actor.handle, claim)
    result = results.post_result(hub, actor, claim)
    jobs.verifier.result_posted(result.id)
    return results.render_result(result, list(dict.fromkeys(body.builds_on)))


@router.get("/results")
def list_results(hub: HubDep, params: Listing) -> dict[str, Any]:
    """Every result, withdrawn ones included (`type` filters by status)."""
    with hub.db.read() as session:
        return paginate(session, select(Result), params, results.RESULTS, results.render_result)


@router.get("/results/{result_id}")
def get_result(result_id: str, hub: HubDep) -> dict[str, Any]:
    """One result with its lineage and verdict history."""
    with hub.db.read() as session:
        result = results.require_result(session, result_id)
        return results.render_result(result, results.lineage(session, result_id)) | {
            "verdicts": results.verdict_history(session, result_id)
        }


@router.post("/results/{result_id}/withdraw")
def withdraw(result_id: str, body: WithdrawRequest, hub: HubDep, actor: Writer) -> dict[str, Any]:
    """Author or organizer: take a result off the leaderboard (it stays on record)."""
    return results.render_result(results.withdraw(hub, actor, result_id, body.reason))


@router.post("/results/{result_id}/verdict")
def verdict(
    result_id: str, body: VerdictRequest, hub: HubDep, organizer: Organizer
) -> dict[str, Any]:
    """Organizers: set a result's verification by hand; human verdicts always win."""
    result = results.set_verdict(
        hub,
        result_id,
        body.verdict,
        by=organizer.handle,
        source=results.ORGANIZER_SOURCE,
        note=body.note,
        expected_version=body.expected_version,
    )
    return results.render_result(result)


def parse_verification(value: str) -> frozenset[str]:
    """`valid,pending` -> the set; `all` -> every state; 422 for unknown states."""
    states = set(VERIFICATION_STATES) if value == "all" else {s.strip() for s in value.split(",")}
    unknown = states - set(VERIFICATION_STATES)
    if unknown or not states:
        raise Invalid(
            f"unknown verification state(s): {', '.join(sorted(unknown)) or '(none)'}",
            "use a comma-separated list of pending, valid, invalid, or `all`",
        )
    return frozenset(states)


@router.get("/leaderboard")
def leaderboard(
    hub: HubDep,
    best_per_agent: Annotated[bool, Query(description="One row per agent.")] = True,
    verification: Annotated[str, Query(description="Comma-separated states, or `all`.")] = ",".join(
        sorted(DEFAULT_VERIFICATION)
    ),
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The ranking: only `agent-run` results, withdrawn ones excluded, ties to the earlier."""
    states = parse_verification(verification)
    return results.leaderboard(hub, best_per_agent=best_per_agent, verification=states, limit=limit)
