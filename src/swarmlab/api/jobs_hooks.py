"""Where the jobs area touches the hub's record: verdicts on results and ruling announcements.

Verdicts are written with compare-and-set on the result's `verification_version` under the
record lock, so an automatic verdict never overwrites an organizer's (organizer verdicts win,
and a ruling is an organizer verdict). Each write appends an event, so dashboards and event
streams see it at once.
"""

from __future__ import annotations

from typing import Any

from swarmlab.api.hub import Hub
from swarmlab.db import utcnow
from swarmlab.db.models import Event, Result, Verdict
from swarmlab.domain.verification import Verdict as Decision

VERIFIER = "verifier"
ORGANIZER_SOURCE = "organizer"
AUTO_SOURCE = "auto"


def write_verdict(
    hub: Hub,
    result_id: str,
    status: str,
    *,
    source: str,
    by: str,
    reason: str,
    extra: dict[str, Any],
) -> bool:
    """Record a verdict unless an organizer's stands (for automatic ones); False if skipped."""
    with hub.db.write() as session:
        hub.db.lock_records(session)
        result = session.get(Result, result_id)
        if result is None:
            return False
        if source == AUTO_SOURCE and result.verification_source == ORGANIZER_SOURCE:
            return False
        result.verification_version += 1
        result.verification = status
        result.verification_source = source
        session.add(
            Verdict(
                result_id=result_id,
                verdict=status,
                source=source,
                by=by,
                reason=reason,
                version=result.verification_version,
                created_at=utcnow(),
            )
        )
        payload = {"verdict": status, "source": source, "by": by, "reason": reason, **extra}
        event = Event(kind="verdict", ref=result_id, payload=payload, created_at=utcnow())
        session.add(event)
        session.flush()
        event_id, author = event.id, result.author
    hub.notifier.notify({author}, event_id)
    return True


class HubVerdicts:
    """The verifier's verdict sink: automatic verdicts by `verifier`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def record(self, result_id: str, verdict: Decision, numbers: dict[str, Any]) -> bool:
        reason = f"{verdict.failed}: {verdict.reason}" if verdict.failed else verdict.reason
        extra = {"check": verdict.failed, "deviation": verdict.deviation, **numbers}
        return write_verdict(
            self.hub,
            result_id,
            verdict.status,
            source=AUTO_SOURCE,
            by=VERIFIER,
            reason=reason,
            extra=extra,
        )


class HubRulingEffects:
    """A ruling's effects: an event everyone's streams receive, and organizer verdicts."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def broadcast(self, ruling: dict[str, Any]) -> None:
        with self.hub.db.write() as session:
            self.hub.db.lock_records(session)
            event = Event(kind="ruling", ref=ruling["id"], payload=ruling, created_at=utcnow())
            session.add(event)
            session.flush()
            event_id = event.id
        self.hub.notifier.notify(None, event_id)

    def invalidate(self, result_id: str, ruling: dict[str, Any]) -> None:
        write_verdict(
            self.hub,
            result_id,
            "invalid",
            source=ORGANIZER_SOURCE,
            by=ruling["by"],
            reason=f"{ruling['id']}: {ruling['title']}",
            extra={"ruling": ruling["id"]},
        )
