"""The audit log: every write attempt (actor, route, target, status, client address).

Entries are written by `WriteMiddleware` around the whole app, so refused writes (401, 403,
429, ...) and idempotent replays are logged too. Only organizers can read it
(`GET /v1/audit`). The log doubles as the count behind the `writes_per_minute` limit.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.types import Scope

from swarmlab.db import utcnow
from swarmlab.db.models import AuditEntry

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else str(scope["path"])


def entry_for(scope: Scope, status: int) -> AuditEntry:
    """The audit entry of a finished write request (the actor comes from `scope["state"]`)."""
    client = scope.get("client")
    return AuditEntry(
        actor=scope.get("state", {}).get("actor"),
        method=scope["method"],
        route=_route(scope)[:200],
        target=str(scope["path"])[:1000],
        status=status,
        client=client[0] if client else None,
    )


def writes_since(session: Session, handle: str, seconds: float) -> tuple[int, float | None]:
    """How many writes `handle` made in the last `seconds`, and the age of the oldest one."""
    start = utcnow() - timedelta(seconds=seconds)
    count, oldest = session.execute(
        select(func.count(), func.min(AuditEntry.at)).where(
            AuditEntry.actor == handle, AuditEntry.at >= start
        )
    ).one()
    return int(count), (oldest - start).total_seconds() if oldest else None
