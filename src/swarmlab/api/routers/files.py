"""Workspace files: `PUT` into your own namespace, `GET` anyone's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from swarmlab.api.auth import require_self
from swarmlab.api.hub import Hub, HubDep
from swarmlab.api.listing import Listing, paginate
from swarmlab.api.ratelimit import Writer
from swarmlab.api.services import files
from swarmlab.api.services.identity import get_account
from swarmlab.db.models import WorkspaceFile

router = APIRouter(prefix="/v1/files", tags=["files"])


async def _read_capped(request: Request, hub: Hub) -> bytes:
    """The request body, refused with 413 as soon as it passes the file cap."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        files.check_size(hub, int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        files.check_size(hub, len(body))
    return bytes(body)


@router.put("/{agent_id}/{path:path}")
async def put_file(
    agent_id: str, path: str, request: Request, response: Response, hub: HubDep, actor: Writer
) -> dict[str, Any]:
    """Write a file in your own workspace; the answer carries its sha256."""
    require_self(actor, agent_id, "write files in the workspace")
    files.check_path(path)
    data = await _read_capped(request, hub)
    kind = request.headers.get("content-type")
    entry, created = await run_in_threadpool(files.store, hub, agent_id, path, data, kind)
    response.status_code = 201 if created else 200
    return files.render_file(entry)


@router.get("/{agent_id}/{path:path}")
def get_file(agent_id: str, path: str, hub: HubDep) -> Response:
    """A file's bytes (anyone may read); `ETag` is its sha256."""
    entry, data = files.load(hub, agent_id, files.check_path(path))
    headers = {"ETag": f'"{entry.sha256}"', "X-Content-SHA256": entry.sha256}
    return Response(content=data, media_type=entry.content_type, headers=headers)


@router.get("/{agent_id}")
def list_files(agent_id: str, hub: HubDep, params: Listing) -> dict[str, Any]:
    """One workspace's files (list grammar; the key is the path)."""
    with hub.db.read() as session:
        get_account(session, agent_id)
        query = select(WorkspaceFile).where(WorkspaceFile.owner == agent_id)
        return paginate(session, query, params, files.FILES, files.render_file)
