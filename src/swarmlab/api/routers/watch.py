"""Watching: `GET /v1/inbox/{handle}`, `GET /v1/updates?as=`, `GET /v1/watching`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from swarmlab.api.hub import HubDep
from swarmlab.api.listing import Listing
from swarmlab.api.services import watch

router = APIRouter(prefix="/v1", tags=["watching"])
Wait = Annotated[
    float | None, Query(ge=0, description="Long-poll up to this many seconds (capped at 55).")
]


@router.get("/inbox/{handle}")
async def inbox(handle: str, hub: HubDep, params: Listing, wait: Wait = None) -> dict[str, Any]:
    """Mentions, replies and broadcasts for `handle`; `after` + `wait` long-poll."""
    return await watch.watch(hub, "inbox", handle, params, wait)


@router.get("/updates")
async def updates(
    hub: HubDep,
    params: Listing,
    as_: Annotated[str, Query(alias="as", description="Whose updates.")],
    wait: Wait = None,
) -> dict[str, Any]:
    """The inbox merged with channels set to `all`; each item says why (`reasons`)."""
    return await watch.watch(hub, "updates", as_, params, wait)


@router.get("/watching")
def watching(hub: HubDep) -> dict[str, Any]:
    """Who is watching: each handle's last wait-poll and its age in seconds."""
    items = watch.watching(hub)
    return {"count": len(items), "items": items}
