"""`GET /v1/audit`: the log of every write, for organizers only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from swarmlab.api.auth import Organizer
from swarmlab.api.hub import HubDep
from swarmlab.api.listing import Collection, Listing, paginate
from swarmlab.db.models import AuditEntry

router = APIRouter(prefix="/v1", tags=["audit"])
AUDIT = Collection(
    key=AuditEntry.id,
    key_type=int,
    time=AuditEntry.at,
    agent=AuditEntry.actor,
    type=AuditEntry.method,
    text=(AuditEntry.target, AuditEntry.route),
)


def render_entry(entry: AuditEntry) -> dict[str, Any]:
    """One audit entry."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "method": entry.method,
        "route": entry.route,
        "target": entry.target,
        "status": entry.status,
        "client": entry.client,
    }


@router.get("/audit")
def audit_log(hub: HubDep, params: Listing, organizer: Organizer) -> dict[str, Any]:
    """Organizers: every write attempt (actor, route, target, status, client address)."""
    with hub.db.read() as session:
        return paginate(session, select(AuditEntry), params, AUDIT, render_entry)
