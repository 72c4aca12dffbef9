"""One router per resource. `ROUTERS` is what `create_app` mounts, in this order."""

from fastapi import APIRouter

from swarmlab.api.routers import identity, meta

ROUTERS: list[APIRouter] = [meta.router, identity.router]
