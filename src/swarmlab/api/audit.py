"""The audit log: every write attempt (actor, route, target, status, client address).

Recorded by an ASGI middleware around the whole app, so refused writes (401, 403, 429, ...)
and idempotent replays are logged too. Only organizers can read it (`GET /v1/audit`).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from swarmlab.api.hub import Hub
from swarmlab.db.models import AuditEntry

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def record(hub: Hub, entry: AuditEntry) -> None:
    """Append one entry."""
    with hub.db.write() as session:
        session.add(entry)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else str(scope["path"])


class AuditMiddleware:
    """Log every write request with its outcome."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        state: dict[str, object] = scope.setdefault("state", {})
        status = 500

        async def watch_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch_status)
        finally:
            client = scope.get("client")
            entry = AuditEntry(
                actor=state.get("actor"),
                method=scope["method"],
                route=_route(scope)[:200],
                target=str(scope["path"])[:1000],
                status=status,
                client=client[0] if client else None,
            )
            await run_in_threadpool(record, self.hub, entry)
