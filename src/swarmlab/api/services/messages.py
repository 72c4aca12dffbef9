"""The message board: posting (with mentions, replies and broadcasts) and reading."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from swarmlab.api import ratelimit
from swarmlab.api.auth import Actor
from swarmlab.api.errors import Forbidden, Invalid, NotFound, PayloadTooLarge
from swarmlab.api.hub import Hub
from swarmlab.api.listing import Collection
from swarmlab.api.services.record import allocate_id, append_event
from swarmlab.db.models import Account, Channel, InboxEntry, Message, Subscription
from swarmlab.domain.mentions import parse_mentions, recipients

TYPE_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# Messages of this type are filed as exploit reports (services/reports.py), never posted.
REPORT_TYPE = "exploit-report"
MESSAGES = Collection(
    key=Message.id,
    time=Message.created_at,
    agent=Message.author,
    type=Message.type,
    channel=Message.channel,
    text=(Message.body,),
)


@dataclass(frozen=True)
class Draft:
    """What a poster controls; the hub stamps author, time and id."""

    body: str
    type: str = "note"
    refs: str | None = None
    channel: str | None = None
    broadcast: bool = False
    results: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Posted:
    """A committed message, who got it in their inbox, and whom to wake."""

    message: Message
    delivered: list[str]
    wake: set[str] | None
    event_id: int


def render_message(message: Message, reasons: list[str] | None = None) -> dict[str, Any]:
    """A message as the API shows it; `filename` is the id under agent-collabs' name."""
    item: dict[str, Any] = {
        "id": message.id,
        "filename": message.id,
        "author": message.author,
        "agent": message.author,
        "type": message.type,
        "body": message.body,
        "refs": message.refs,
        "channel": message.channel,
        "broadcast": message.broadcast,
        "timestamp": message.created_at.isoformat(),
    }
    if reasons is not None:
        item["reasons"] = reasons
    return item


def check_draft(hub: Hub, actor: Actor, draft: Draft) -> None:
    """Refuse oversized bodies, bad types and broadcasts by non-organizers, before any write."""
    cap = hub.spec.limits.message_bytes
    size = len(draft.body.encode("utf-8"))
    if size > cap:
        raise PayloadTooLarge(
            f"the message body is {size} bytes; this challenge caps messages at {cap}",
            "keep messages short and put details in a workspace file (PUT /v1/files/...)",
        )
    if not draft.body.strip():
        raise Invalid("the message body is empty", "write something in `body`")
    if not TYPE_RE.fullmatch(draft.type):
        raise Invalid(
            f"{draft.type!r} is not a message type",
            "use a short lowercase word such as note, plan, result, question",
        )
    if draft.type == REPORT_TYPE:  # the router files these through services/reports.py
        raise Invalid(
            "exploit reports are never posted on the public board",
            "file it with POST /v1/reports (or POST /v1/messages, which files it for you)",
        )
    if draft.results:
        raise Invalid(
            f"`results` belongs to exploit reports, not to a {draft.type!r} message",
            f"send type {REPORT_TYPE!r} to file a report, or name the results in the body",
        )
    if draft.broadcast and not actor.is_organizer:
        raise Forbidden(
            "only organizers can broadcast to every inbox", "mention the handles you need instead"
        )


def require_message(session: Session, message_id: str) -> Message:
    """The message with this id, or 404."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(
            f"no message has the id {message_id!r}",
            "copy the id from GET /v1/messages (form YYYYMMDD-HHMMSS-mmm_<handle>.md)",
            code="unknown_message",
        )
    return message


def require_channel(session: Session, name: str) -> Channel:
    """The channel named `name`, or 404."""
    channel = session.get(Channel, name)
    if channel is None:
        raise NotFound(
            f"there is no channel {name!r}",
            "GET /v1/channels lists channels; POST /v1/channels creates one",
            code="unknown_channel",
        )
    return channel


def ensure_subscribed(session: Session, channel: str, handle: str) -> Subscription:
    """The handle's subscription to `channel`, created at `mentions` level if missing."""
    subscription = session.get(Subscription, (channel, handle))
    if subscription is None:
        subscription = Subscription(channel=channel, handle=handle, notify="mentions")
        session.add(subscription)
    return subscription


def _inbox_recipients(
    session: Session, author: str, draft: Draft, ref_author: str | None
) -> list[str]:
    if draft.broadcast:
        return list(session.scalars(select(Account.handle).where(Account.handle != author)))
    mentioned = parse_mentions(draft.body)
    candidates = [*mentioned, *([ref_author] if ref_author else [])]
    known = session.scalars(select(Account.handle).where(Account.handle.in_(candidates)))
    return recipients(author, mentioned, [ref_author] if ref_author else [], known)


def _reason(handle: str, draft: Draft, ref_author: str | None) -> str:
    if draft.broadcast:
        return "broadcast"
    return "ref" if handle == ref_author and f"@{handle}" not in draft.body else "mention"


def insert_message(hub: Hub, session: Session, author: str, draft: Draft) -> Posted:
    """Write a message, its inbox deliveries and its event in the caller's transaction."""
    ref_author = require_message(session, draft.refs).author if draft.refs else None
    wake: set[str] = set()
    if draft.channel:
        require_channel(session, draft.channel)
        ensure_subscribed(session, draft.channel, author)
        wake.update(
            session.scalars(
                select(Subscription.handle).where(Subscription.channel == draft.channel)
            )
        )
    message_id, stamp = allocate_id(hub.db, session, Message, author)
    message = Message(
        id=message_id,
        stamp_ms=stamp,
        author=author,
        type=draft.type,
        body=draft.body,
        refs=draft.refs,
        channel=draft.channel,
        broadcast=draft.broadcast,
    )
    session.add(message)
    session.flush()
    delivered = _inbox_recipients(session, author, draft, ref_author)
    session.add_all(
        InboxEntry(handle=h, message_id=message_id, reason=_reason(h, draft, ref_author))
        for h in delivered
    )
    event_id = append_event(
        session, "message", message_id, {"author": author, "channel": draft.channel}
    )
    return Posted(message, delivered, None if draft.broadcast else wake | set(delivered), event_id)


def post_message(hub: Hub, actor: Actor, draft: Draft) -> Posted:
    """Post a message as `actor`: checks, rate limits, write, then wake whoever it reaches."""
    check_draft(hub, actor, draft)
    limits = hub.spec.rate_limits
    with hub.db.write() as session:
        if actor.role not in ratelimit.EXEMPT_ROLES:
            buckets = [(limits.messages_per_minute, 60), (limits.messages_per_hour, 3600)]
            ratelimit.hit(hub.db, session, actor.handle, "message", buckets)
        posted = insert_message(hub, session, actor.handle, draft)
    hub.notifier.notify(posted.wake, posted.event_id)
    return posted
