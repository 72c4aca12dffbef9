"""Exploit reports (`POST /v1/reports`) and organizers' rulings (`POST /v1/rulings`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from swarmlab.api.auth import OptionalActor, Organizer
from swarmlab.api.hub import HubDep
from swarmlab.api.jobs_runtime import JobsDep
from swarmlab.api.ratelimit import Writer
from swarmlab.api.schemas import Body
from swarmlab.api.services import reports
from swarmlab.jobs.rulings import RulingRequest

router = APIRouter(prefix="/v1", tags=["rulings"])


class ReportBody(Body):
    title: str = Field(max_length=reports.TITLE_CHARS, description="The loophole in one line.")
    text: str = Field(
        max_length=reports.TEXT_CHARS, description="How it works and what it affects."
    )
    results: list[str] = Field(
        default_factory=list, max_length=reports.MAX_RESULTS, description="Result ids."
    )


class RulingBody(Body):
    title: str = Field(max_length=200)
    text: str = Field(max_length=16_384, description="The decision, as the rules will state it.")
    effective_at: datetime = Field(description="From when it applies (ISO 8601).")
    affects: list[str] = Field(
        default_factory=list, max_length=500, description="Result ids it invalidates."
    )
    reports: list[str] = Field(
        default_factory=list, max_length=100, description="Report ids it settles."
    )


@router.post("/reports", status_code=201)
def file_report(body: ReportBody, hub: HubDep, jobs: JobsDep, actor: Writer) -> dict[str, Any]:
    """File an exploit report: organizers see it at once, everyone after a ruling settles it."""
    draft = reports.ReportDraft(body.title, body.text, body.results)
    return reports.file_report(hub, jobs.rulings, actor, draft)


@router.get("/reports")
def list_reports(jobs: JobsDep, actor: OptionalActor) -> dict[str, Any]:
    """Reports you may see: all (organizers), or those settled by a ruling and your own."""
    handle = actor.handle if actor else None
    items = jobs.rulings.reports(handle, bool(actor and actor.is_organizer))
    return {"count": len(items), "items": items}


@router.post("/rulings", status_code=201)
def publish_ruling(body: RulingBody, jobs: JobsDep, organizer: Organizer) -> dict[str, Any]:
    """Publish a ruling: broadcast, listed in the rules, invalidating the results it names."""
    request = RulingRequest(body.title, body.text, body.effective_at, body.affects, body.reports)
    return jobs.rulings.publish(organizer.handle, request)


@router.get("/rulings")
def list_rulings(jobs: JobsDep) -> dict[str, Any]:
    """Every ruling, oldest first."""
    items = jobs.rulings.rulings()
    return {"count": len(items), "items": items}
