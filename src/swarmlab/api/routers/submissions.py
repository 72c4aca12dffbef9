"""Submissions: upload a bundle (`POST /v1/submissions`), read its record, fetch its bytes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from swarmlab.api.auth import CurrentActor, Participant
from swarmlab.api.errors import Forbidden
from swarmlab.api.hub import HubDep
from swarmlab.jobs.submissions import check_size, get_submission, store_submission

router = APIRouter(prefix="/v1", tags=["submissions"])
BUNDLE_TYPE = "application/gzip"


async def read_capped(request: Request, cap: int) -> bytes:
    """The request body, refused as soon as it passes ``cap`` bytes (whatever it claims)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        check_size(int(declared), cap)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        check_size(size, cap)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/submissions", status_code=201)
async def upload(
    request: Request, hub: HubDep, actor: Participant, response: Response
) -> dict[str, Any]:
    """Upload a tar.gz bundle (body: the bytes). Its manifest is validated by the harness;
    the record is immutable and named by the bundle's sha256. The same bytes again answer 200
    with the existing record."""
    cap = hub.spec.limits.submission_bytes
    data = await read_capped(request, cap)
    view, created = await run_in_threadpool(
        store_submission, hub.db, hub.blobs, actor.handle, data, cap
    )
    if not created:
        response.status_code = 200
    return view


@router.get("/submissions/{submission_id}")
def show(submission_id: str, hub: HubDep) -> dict[str, Any]:
    """A submission's record: owner, sha256, size and validated manifest."""
    return get_submission(hub.db, submission_id)


@router.get("/submissions/{submission_id}/bundle")
def bundle(submission_id: str, hub: HubDep, actor: CurrentActor) -> Response:
    """The bundle's bytes, for its owner, organizers and workers."""
    view = get_submission(hub.db, submission_id)
    if actor.handle != view["owner"] and actor.role not in ("organizer", "worker"):
        raise Forbidden(
            f"the bundle of {submission_id} is visible to {view['owner']} and organizers",
            "ask its owner to share the source, or read its manifest at this record",
        )
    return Response(hub.blobs.get(view["sha256"]), media_type=BUNDLE_TYPE)
