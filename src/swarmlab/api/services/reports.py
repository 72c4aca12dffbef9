"""Filing exploit reports, whether through `POST /v1/reports` or a message of type
`exploit-report`.

The board is public, but a report must stay between its author and the organizers until a
ruling settles it. So an `exploit-report` message is never stored as a message: it is turned
into a report here, by the same checks, rate limits and write as `POST /v1/reports`, and the
answer says so (the report's id and where to read it) instead of returning a board message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from swarmlab.api import ratelimit
from swarmlab.api.auth import Actor
from swarmlab.api.errors import Invalid
from swarmlab.api.hub import Hub
from swarmlab.api.services.messages import REPORT_TYPE, Draft
from swarmlab.jobs.rulings import Rulings

TITLE_CHARS = 200
TEXT_CHARS = 16_384
MAX_RESULTS = 100
WHERE = "GET /v1/reports"


@dataclass(frozen=True)
class ReportDraft:
    """What a reporter controls; the hub stamps id, author and time."""

    title: str
    text: str
    results: list[str]


def check_report(draft: ReportDraft) -> None:
    """Refuse an empty or oversized report before any write (the caps of `POST /v1/reports`)."""
    if not draft.title.strip():
        raise Invalid("the report has no title", "say what the loophole is in one line")
    if len(draft.title) > TITLE_CHARS:
        raise Invalid(
            f"the report's title is {len(draft.title)} characters; the cap is {TITLE_CHARS}",
            "keep the title (a message's first line) short and put the details below it",
        )
    if len(draft.text) > TEXT_CHARS:
        raise Invalid(
            f"the report's text is {len(draft.text)} characters; the cap is {TEXT_CHARS}",
            "describe the loophole briefly; put long material in a workspace file",
        )
    if len(draft.results) > MAX_RESULTS:
        raise Invalid(
            f"the report names {len(draft.results)} results; the cap is {MAX_RESULTS}",
            "name the results that show the loophole best",
        )


def file_report(hub: Hub, rulings: Rulings, actor: Actor, draft: ReportDraft) -> dict[str, Any]:
    """File a report as `actor`; it counts as a message for the challenge's rate limits."""
    check_report(draft)
    limits = hub.spec.rate_limits
    buckets = [(limits.messages_per_minute, 60), (limits.messages_per_hour, 3600)]

    def guard(session: Session) -> None:
        if actor.role not in ratelimit.EXEMPT_ROLES:
            ratelimit.hit(hub.db, session, actor.handle, "message", buckets)

    return rulings.report(actor.handle, draft.title, draft.text, draft.results, guard)


def draft_from_message(message: Draft) -> ReportDraft:
    """A report from an `exploit-report` message: its first line is the title (markdown
    heading marks dropped), the rest the text (the title again when there is no rest).

    Anything that would make the message public (a channel, a reply, a broadcast) is refused.
    """
    if message.channel or message.refs or message.broadcast:
        raise Invalid(
            "an exploit-report message is filed privately, so it cannot go to a channel, "
            "reply to a message or be broadcast",
            "drop `channel`, `refs` and `broadcast`; name the results it concerns in `results`",
        )
    if not message.body.strip():
        raise Invalid(
            "the message body is empty",
            "write the loophole's title on the first line and how it works below it",
        )
    lines = message.body.strip().splitlines()
    title = lines[0].lstrip("#").strip()
    rest = "\n".join(lines[1:]).strip()
    return ReportDraft(title=title, text=rest or title, results=list(message.results))


def file_from_message(hub: Hub, rulings: Rulings, actor: Actor, message: Draft) -> dict[str, Any]:
    """File an `exploit-report` message as a report; the answer says where it went."""
    return filed_answer(file_report(hub, rulings, actor, draft_from_message(message)))


def filed_answer(report: dict[str, Any]) -> dict[str, Any]:
    """The answer to an `exploit-report` message: a report was filed, no message posted."""
    return {
        "filed": "report",
        "type": REPORT_TYPE,
        "id": report["id"],
        "report": report,
        "see": WHERE,
        "posted": False,
        "mentions_delivered": [],
        "note": (
            f"exploit reports are not posted on the public board: {report['id']} is visible to "
            f"organizers now and to everyone once a ruling settles it ({WHERE})"
        ),
    }
