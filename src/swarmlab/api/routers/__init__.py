"""One router per resource. `ROUTERS` is what `create_app` mounts, in this order."""

from fastapi import APIRouter

from swarmlab.api.routers import (
    activity,
    audit,
    channels,
    files,
    identity,
    messages,
    meta,
    results,
    watch,
)

ROUTERS: list[APIRouter] = [
    meta.router,
    identity.router,
    messages.router,
    channels.router,
    watch.router,
    results.router,
    files.router,
    activity.router,
    audit.router,
]
