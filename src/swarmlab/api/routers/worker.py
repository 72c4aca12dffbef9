"""The worker API: what remote workers call, with a `worker` token, to run jobs.

Workers never write to the database themselves: they claim a job under a lease, download its
bundle and inputs, heartbeat with progress and log lines, upload artifacts and report the
outcome, all through these routes. Organizers create worker accounts with `POST /v1/workers`.
"""

from __future__ import annotations

import pathlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import FileResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from swarmlab.api.auth import Actor, Organizer, new_token, require_role
from swarmlab.api.errors import Conflict, Invalid, NotFound
from swarmlab.api.hub import Hub, HubDep
from swarmlab.api.jobs_runtime import JobsDep, JobsRuntime
from swarmlab.api.routers.submissions import read_capped
from swarmlab.api.schemas import Body
from swarmlab.db.models import Account, Token
from swarmlab.domain import ids
from swarmlab.domain.jobs import JobStatus
from swarmlab.jobs.inputs import MissingInputs, input_files, job_inputs
from swarmlab.jobs.submissions import get_submission

router = APIRouter(prefix="/v1", tags=["workers"])
Worker = Annotated[Actor, Depends(require_role("worker"))]
WORKER_PREFIX = "worker-"
ARTIFACT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"


class WorkerRequest(Body):
    name: str = Field(max_length=30, description="The worker's name; its handle is worker-<name>.")


class ClaimRequest(Body):
    worker: str = Field(max_length=80, description="This worker process, e.g. host/slot.")
    flavor: str | None = Field(None, max_length=40, description="Take the oldest of a flavour.")
    job: str | None = Field(None, max_length=40, description="Take this job (Celery delivery).")


class Heartbeat(Body):
    lease: str = Field(max_length=40)
    stage: str = Field("", max_length=40)
    progress: float | None = Field(None, ge=0, le=1)
    log: str = Field("", max_length=65_536)


class Finish(Body):
    lease: str = Field(max_length=40)
    status: Literal["completed", "error", "timed_out", "cancelled"]
    message: str = Field("", max_length=16_384)
    summary: dict[str, Any] | None = None


@router.post("/workers", status_code=201)
def create_worker(body: WorkerRequest, hub: HubDep, _organizer: Organizer) -> dict[str, Any]:
    """Create a worker account (organizers); the answer holds its token, shown once."""
    handle = WORKER_PREFIX + body.name
    try:
        ids.check_handle(handle)
    except ids.InvalidHandle as exc:
        raise Invalid(str(exc), "use a short lowercase name like `gpu-box-1`") from exc
    secret, token_hash = new_token()
    with hub.db.write() as session:
        if session.get(Account, handle) is not None:
            raise Conflict(f"{handle} exists", "pick another name, or rotate that worker's token")
        session.add(Account(handle=handle, role="worker"))
        session.flush()
        session.add(Token(handle=handle, token_hash=token_hash))
    return {"handle": handle, "role": "worker", "token": secret}


@router.post("/worker/claim", response_model=None)
def claim(
    body: ClaimRequest, hub: HubDep, jobs: JobsDep, actor: Worker
) -> dict[str, Any] | Response:
    """Take a job under a lease: the named one, or the oldest queued one of a flavour.
    204 when there is none (already taken, cancelled, or an empty queue)."""
    if (body.job is None) == (body.flavor is None):
        raise Invalid("give exactly one of `job` and `flavor`", "Celery workers send `job`")
    taken = jobs.queue.claim(f"{actor.handle}/{body.worker}", job_id=body.job, flavor=body.flavor)
    if taken is None:
        return Response(status_code=204)
    profiles = hub.spec.bench.profiles if hub.spec.bench else {}
    profile = profiles.get(taken.job["profile"])
    return {
        "job": taken.job,
        "lease": taken.lease_id,
        "submission_sha256": taken.submission_sha256,
        "profile": None if profile is None else profile.model_dump(),
        "inputs": sorted(_inputs(hub, taken.job["prompt_set"])),
    }


def _inputs(hub: Hub, prompt_set: str) -> dict[str, pathlib.Path]:
    try:
        return input_files(job_inputs(hub.pack, prompt_set))
    except MissingInputs as exc:
        raise NotFound(str(exc), "an organizer must add the prompt sets to the pack") from exc


def _held(jobs: JobsRuntime, job_id: str, lease: str) -> dict[str, Any]:
    job = jobs.queue.get(job_id)
    jobs.queue.heartbeat(job_id, lease)  # raises LeaseLost (409) for anyone else
    return job


@router.get("/worker/jobs/{job_id}/bundle")
def bundle(job_id: str, hub: HubDep, jobs: JobsDep, _actor: Worker, lease: str) -> Response:
    """The job's submission bundle, for the worker holding its lease."""
    job = _held(jobs, job_id, lease)
    sha256 = get_submission(hub.db, job["submission"])["sha256"]
    return Response(hub.blobs.get(sha256), media_type="application/gzip")


@router.get("/worker/jobs/{job_id}/inputs/{kind}")
def job_input(
    job_id: str, kind: str, hub: HubDep, jobs: JobsDep, _actor: Worker, lease: str
) -> FileResponse:
    """One input file of the job's prompt set (prompts, ppl_truth, reference_decode)."""
    job = _held(jobs, job_id, lease)
    files = _inputs(hub, job["prompt_set"])
    if kind not in files:
        raise NotFound(f"job {job_id} has no input {kind!r}", f"it has: {', '.join(sorted(files))}")
    return FileResponse(files[kind], media_type="application/x-ndjson")


@router.post("/worker/jobs/{job_id}/heartbeat")
def heartbeat(job_id: str, body: Heartbeat, jobs: JobsDep, _actor: Worker) -> dict[str, Any]:
    """Renew the lease with stage, progress and new log text; `cancel` asks the worker to stop."""
    return jobs.queue.heartbeat(
        job_id, body.lease, stage=body.stage, progress=body.progress, log=body.log
    )


@router.put("/worker/jobs/{job_id}/artifacts/{name}", status_code=201)
async def upload_artifact(
    job_id: str,
    name: Annotated[str, Path(pattern=ARTIFACT_NAME)],
    request: Request,
    hub: HubDep,
    jobs: JobsDep,
    _actor: Worker,
    lease: str,
) -> dict[str, Any]:
    """Store one artifact file (body: its bytes) under the job."""
    data = await read_capped(request, hub.spec.limits.submission_bytes)
    sha256 = await run_in_threadpool(hub.blobs.put, data)
    await run_in_threadpool(jobs.queue.add_artifact, job_id, lease, name, sha256, len(data))
    return {"name": name, "sha256": sha256, "size": len(data)}


@router.post("/worker/jobs/{job_id}/finish")
def finish(job_id: str, body: Finish, jobs: JobsDep, _actor: Worker) -> dict[str, Any]:
    """Report the outcome; the summary is the run's summary.json."""
    return jobs.queue.finish(job_id, body.lease, JobStatus(body.status), body.message, body.summary)
