"""Benchmark jobs for participants: request with quota, the public queue, logs, artifacts,
cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from swarmlab.api.auth import Actor, CurrentActor, OptionalActor, Organizer, Participant
from swarmlab.api.errors import Forbidden, NotFound
from swarmlab.api.hub import HubDep
from swarmlab.api.jobs_runtime import JobsDep
from swarmlab.api.schemas import Body
from swarmlab.domain.jobs import JobStatus
from swarmlab.jobs.queue import JobQueue

router = APIRouter(prefix="/v1", tags=["jobs"])
FOLLOW_POLL_S = 0.5


class JobRequest(Body):
    submission_id: str = Field(max_length=40, description="A submission you uploaded.")
    purpose: Literal["self-eval"] = Field("self-eval", description="Why the job runs.")
    profile: str = Field("full", max_length=40, description="Bench profile of the challenge.")


@router.post("/jobs", status_code=202)
def request_job(body: JobRequest, hub: HubDep, jobs: JobsDep, actor: Participant) -> dict[str, Any]:
    """Queue a benchmark of your submission; quota check and enqueue are one transaction.
    Over quota: 429 with Retry-After."""
    profiles = hub.spec.bench.profiles if hub.spec.bench else {}
    if body.profile not in profiles:
        raise NotFound(
            f"this challenge has no bench profile {body.profile!r}",
            f"use one of: {', '.join(sorted(profiles)) or 'none (the challenge runs no jobs)'}",
        )
    view, quota = jobs.queue.request(actor.handle, actor.role, body.submission_id, body.profile)
    return {**view, "quota": None if quota is None else quota.as_dict()}


@router.get("/jobs")
def list_jobs(
    jobs: JobsDep,
    agent: Annotated[str | None, Query(description="Only jobs of this handle.")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The public queue, newest first: who waits, what runs where, what finished how."""
    items = jobs.queue.list_jobs(owner=agent, status=status, limit=limit)
    return {"count": len(items), "items": items}


@router.get("/jobs/{job_id}")
def show_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """One job: status, stage, progress, worker, attempts, summary."""
    return jobs.queue.get(job_id)


def _check_private(queue: JobQueue, job_id: str, actor: Actor | None) -> None:
    """Logs and files of private-set runs would leak the private prompts: organizers only."""
    job = queue.get(job_id)
    if job["prompt_set"] == "private" and (actor is None or not actor.is_organizer):
        raise Forbidden(
            f"job {job_id} ran on the private prompt set; its logs and files are for organizers",
            "its outcome and summary are public at GET /v1/jobs/{id}",
        )


async def _follow(queue: JobQueue, job_id: str, after: int) -> AsyncIterator[str]:
    while True:
        chunks, status = await run_in_threadpool(queue.logs, job_id, after)
        for chunk in chunks:
            after = chunk["seq"]
            yield chunk["text"] if chunk["text"].endswith("\n") else chunk["text"] + "\n"
        if JobStatus(status).terminal and not chunks:
            return
        if not chunks:
            await asyncio.sleep(FOLLOW_POLL_S)


@router.get("/jobs/{job_id}/logs", response_model=None)
def job_logs(
    job_id: str,
    jobs: JobsDep,
    actor: OptionalActor,
    after: Annotated[int, Query(ge=0, description="Only chunks after this sequence number.")] = 0,
    follow: Annotated[bool, Query(description="Stream text until the job ends.")] = False,
) -> dict[str, Any] | StreamingResponse:
    """The job's log: JSON chunks with a `next` cursor, or with `follow=1` a text stream that
    ends when the job does."""
    _check_private(jobs.queue, job_id, actor)
    if follow:
        return StreamingResponse(_follow(jobs.queue, job_id, after), media_type="text/plain")
    chunks, status = jobs.queue.logs(job_id, after)
    return {
        "count": len(chunks),
        "items": chunks,
        "next": chunks[-1]["seq"] if chunks else after,
        "status": status,
    }


@router.get("/jobs/{job_id}/artifacts")
def list_artifacts(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """The files the job produced (name, sha256, size)."""
    return {"job": job_id, "artifacts": jobs.queue.artifacts(job_id)}


@router.get("/jobs/{job_id}/artifacts/{name}")
def artifact(job_id: str, name: str, hub: HubDep, jobs: JobsDep, actor: OptionalActor) -> Response:
    """Download one artifact: summary.json, decode_outputs.jsonl, PPL results, server.log..."""
    _check_private(jobs.queue, job_id, actor)
    files = jobs.queue.artifacts(job_id)
    if name not in files:
        raise NotFound(
            f"job {job_id} has no artifact {name!r}",
            f"it has: {', '.join(sorted(files)) or 'none yet'}",
        )
    media = "application/json" if name.endswith(".json") else "text/plain"
    return Response(hub.blobs.get(files[name]["sha256"]), media_type=media)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, jobs: JobsDep, actor: CurrentActor) -> dict[str, Any]:
    """Cancel your job: a queued one at once, a running one at its worker's next heartbeat."""
    return jobs.queue.cancel(job_id, actor.handle, actor.is_organizer)


@router.post("/verification/degradation", status_code=202)
def degradation_check(jobs: JobsDep, _organizer: Organizer) -> dict[str, Any]:
    """Re-score the top K valid results' guardrail on the private set now (organizers)."""
    queued = jobs.verifier.degradation_check()
    return {"count": len(queued), "items": queued}
