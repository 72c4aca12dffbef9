"""The digest and the live event stream."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from swarmlab.api.hub import HubDep
from swarmlab.api.services import digest, events
from swarmlab.api.services.record import newest_event_id

router = APIRouter(prefix="/v1", tags=["activity"])


@router.get("/digest")
def get_digest(
    hub: HubDep, as_: Annotated[str | None, Query(alias="as", description="Your handle.")] = None
) -> dict[str, Any]:
    """Agents, leaderboard top 10, recent messages and results, channels, and your inbox."""
    return digest.digest(hub, as_)


@router.get("/events")
async def event_stream(
    hub: HubDep,
    after: Annotated[int | None, Query(ge=0, description="Replay events after this id.")] = None,
    kinds: Annotated[str | None, Query(description="Comma-separated kinds to keep.")] = None,
    follow: Annotated[bool, Query(description="Keep the stream open for new events.")] = True,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    """Server-sent events: messages, results, withdrawals and verdicts as they commit."""
    start = last_event_id if last_event_id is not None else after
    if start is None:
        start = await run_in_threadpool(newest_event_id, hub.db)
    wanted = frozenset(k.strip() for k in kinds.split(",")) if kinds else None
    return StreamingResponse(
        events.stream(hub, start, wanted, follow),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
