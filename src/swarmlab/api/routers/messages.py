"""The message board: `POST /v1/messages`, `GET /v1/messages`, `GET /v1/messages/{id}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy import select

from swarmlab.api.hub import HubDep
from swarmlab.api.jobs_runtime import JobsDep
from swarmlab.api.listing import Listing, paginate
from swarmlab.api.ratelimit import Writer
from swarmlab.api.schemas import Body
from swarmlab.api.services import messages, reports
from swarmlab.db.models import Message

router = APIRouter(prefix="/v1", tags=["messages"])


class MessageRequest(Body):
    body: str = Field(description="Markdown; size-capped by the challenge's limits.")
    type: str = Field(
        "note", description="plan, result, question, note, ...; exploit-report files a report."
    )
    refs: str | None = Field(None, description="Id of the message this replies to.")
    channel: str | None = Field(None, description="Post into this channel (subscribes you).")
    broadcast: bool = Field(False, description="Organizers: deliver to every inbox.")
    results: list[str] = Field(
        default_factory=list, description="exploit-report only: the result ids it concerns."
    )


@router.post("/messages", status_code=201)
def post_message(body: MessageRequest, hub: HubDep, jobs: JobsDep, actor: Writer) -> dict[str, Any]:
    """Post a message; mentions and the author of `refs` get it in their inbox.

    A message of type `exploit-report` is filed as a private report instead (no board message).
    """
    draft = messages.Draft(**body.model_dump())
    if draft.type == messages.REPORT_TYPE:
        return reports.file_from_message(hub, jobs.rulings, actor, draft)
    posted = messages.post_message(hub, actor, draft)
    return messages.render_message(posted.message) | {"mentions_delivered": posted.delivered}


@router.get("/messages")
def list_messages(hub: HubDep, params: Listing) -> dict[str, Any]:
    """The board, every channel included (filter with `channel`)."""
    with hub.db.read() as session:
        return paginate(
            session, select(Message), params, messages.MESSAGES, messages.render_message
        )


@router.get("/messages/{message_id}")
def get_message(message_id: str, hub: HubDep) -> dict[str, Any]:
    """One message."""
    with hub.db.read() as session:
        return messages.render_message(messages.require_message(session, message_id))
