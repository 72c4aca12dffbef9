"""Where the jobs area meets the hub's record: measured results, verdicts and announcements.

The hub's results and messages services stay the only writers of results, verdicts and board
messages; these hooks call them. A result posted with `job` takes its numbers from that job
(`measured_claim`), is handed to the verifier once recorded (`result_posted`), and every
automatic verdict is written with the hub's compare-and-set (an organizer verdict always wins) and
announced on the board by `verifier`, mentioning the author. A ruling is broadcast by the
organizer who made it and invalidates the results it names as an organizer verdict.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.exc import IntegrityError

from swarmlab.api.errors import Conflict
from swarmlab.api.hub import Hub
from swarmlab.api.services import results
from swarmlab.api.services.messages import Draft, insert_message
from swarmlab.db.models import Account
from swarmlab.domain.verification import Verdict as Decision
from swarmlab.jobs.measured import measured_fields
from swarmlab.jobs.queue import JobQueue

VERIFIER = "verifier"


def measured_claim(hub: Hub, queue: JobQueue, author: str, claim: results.Claim) -> results.Claim:
    """A claim naming a job, with its score and guardrail taken from the job (`measured`).

    Claims without a job pass unchanged; a claim disagreeing with its job is refused with both
    numbers (422 `claim_mismatch`).
    """
    if claim.job is None:
        return claim
    measured = measured_fields(queue, hub.spec, claim.job, author, claim.fields)
    return dataclasses.replace(
        claim,
        fields={**claim.fields, **measured.fields},
        submission=measured.submission,
        provenance="measured",
    )


def ensure_verifier(hub: Hub) -> None:
    """The `verifier` account that signs automatic verdicts (it has no token: nobody logs in)."""
    with hub.db.read() as session:
        if session.get(Account, VERIFIER) is not None:
            return
    try:
        with hub.db.write() as session:
            session.add(Account(handle=VERIFIER, role="worker", bio="The hub's automatic verifier"))
    except IntegrityError:
        pass  # another process created it first


def announce(
    hub: Hub, author: str, body: str, *, broadcast: bool = False, kind: str = "note"
) -> None:
    """Post on the board as ``author`` (the hub's own voice: no rate limit applies)."""
    with hub.db.write() as session:
        posted = insert_message(
            hub, session, author, Draft(body=body, type=kind, broadcast=broadcast)
        )
    hub.notifier.notify(posted.wake, posted.event_id)


class HubVerdicts:
    """The verifier's verdict sink: the hub's compare-and-set, then an announcement."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def record(self, result_id: str, verdict: Decision, numbers: dict[str, Any]) -> bool:
        note = f"{verdict.failed}: {verdict.reason}" if verdict.failed else verdict.reason
        try:
            result = results.set_verdict(
                self.hub, result_id, verdict.status.value, by=VERIFIER, source="auto", note=note
            )
        except Conflict:
            return False  # an organizer verdict stands
        ensure_verifier(self.hub)
        job = f" (job {numbers['job']})" if numbers.get("job") else ""
        announce(
            self.hub,
            VERIFIER,
            f"@{result.author} your result {result_id} is **{verdict.status.value}**{job}: {note}",
            kind="verdict",
        )
        return True


class HubRulingEffects:
    """A ruling is broadcast by its organizer and invalidates results as an organizer verdict."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def broadcast(self, ruling: dict[str, Any]) -> None:
        affected = ", ".join(ruling["affects"]) or "none"
        body = (
            f"**Ruling {ruling['id']}: {ruling['title']}** (effective {ruling['effective_at']})\n\n"
            f"{ruling['text']}\n\nResults invalidated: {affected}. Listed at GET /v1/rulings."
        )
        announce(self.hub, ruling["by"], body, broadcast=True, kind="ruling")

    def invalidate(self, result_id: str, ruling: dict[str, Any]) -> None:
        results.set_verdict(
            self.hub,
            result_id,
            "invalid",
            by=ruling["by"],
            source="organizer",
            note=f"{ruling['id']}: {ruling['title']}",
        )
