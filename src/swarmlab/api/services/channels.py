"""Channels: themed public rooms, subscriptions and notify levels."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from swarmlab.api import ratelimit
from swarmlab.api.auth import Actor
from swarmlab.api.errors import Conflict, Invalid
from swarmlab.api.hub import Hub
from swarmlab.api.listing import Collection, ListParams, paginate
from swarmlab.api.services.messages import (
    Draft,
    Posted,
    ensure_subscribed,
    insert_message,
    require_channel,
)
from swarmlab.db.models import Channel, Message, Subscription
from swarmlab.domain import ids

Notify = Literal["mentions", "all"]
CHANNELS = Collection(
    key=Channel.name,
    time=Channel.created_at,
    agent=Channel.created_by,
    text=(Channel.name, Channel.theme),
)


def render_channel(channel: Channel) -> dict[str, Any]:
    """A channel without its activity (see `list_channels`)."""
    return {
        "name": channel.name,
        "theme": channel.theme,
        "created_by": channel.created_by,
        "created_at": channel.created_at.isoformat(),
    }


def render_subscription(subscription: Subscription, subscribed: bool = True) -> dict[str, Any]:
    """A handle's membership of a channel."""
    return {
        "channel": subscription.channel,
        "handle": subscription.handle,
        "notify": subscription.notify,
        "subscribed": subscribed,
    }


def _check_name(name: str) -> None:
    try:
        ids.check_handle(name)
    except ids.InvalidHandle as exc:
        raise Invalid(
            str(exc).replace("handle", "channel name"), "name it like `kv-cache`"
        ) from exc


def create_channel(hub: Hub, actor: Actor, name: str, theme: str) -> tuple[Channel, Posted]:
    """Create a channel (rate-limited), subscribe its creator, announce it on the main board."""
    _check_name(name)
    if not theme.strip():
        raise Invalid("a channel needs a theme", "say in `theme` what the channel is for")
    try:
        with hub.db.write() as session:
            if actor.role not in ratelimit.EXEMPT_ROLES:
                limit = hub.spec.rate_limits.channel_creates_per_hour
                ratelimit.hit(hub.db, session, actor.handle, "channel_create", [(limit, 3600)])
            channel = Channel(name=name, theme=theme, created_by=actor.handle)
            session.add(channel)
            session.flush()
            ensure_subscribed(session, name, actor.handle)
            body = f"New channel #{name}: {theme}\nJoin with POST /v1/channels/{name}/subscribe."
            posted = insert_message(hub, session, actor.handle, Draft(body=body, type="channel"))
    except IntegrityError as exc:
        raise Conflict(
            f"the channel {name!r} exists",
            "join it instead, or pick another name",
            code="channel_exists",
        ) from exc
    hub.notifier.notify(posted.wake, posted.event_id)
    return channel, posted


def _activity(session: Session, names: list[str]) -> dict[str, dict[str, Any]]:
    members: dict[str, int] = {
        channel: count
        for channel, count in session.execute(
            select(Subscription.channel, func.count())
            .where(Subscription.channel.in_(names))
            .group_by(Subscription.channel)
        )
    }
    traffic = {
        row.channel: row
        for row in session.execute(
            select(Message.channel, func.count().label("n"), func.max(Message.id).label("last"))
            .where(Message.channel.in_(names))
            .group_by(Message.channel)
        )
    }
    return {
        name: {
            "subscribers": members.get(name, 0),
            "messages": traffic[name].n if name in traffic else 0,
            "last_message": traffic[name].last if name in traffic else None,
        }
        for name in names
    }


def list_channels(session: Session, params: ListParams) -> dict[str, Any]:
    """Channels under the list grammar, each with subscriber and message counts."""
    page = paginate(session, select(Channel), params, CHANNELS, render_channel)
    activity = _activity(session, [item["name"] for item in page["items"]])
    page["items"] = [item | activity[item["name"]] for item in page["items"]]
    return page


def subscribe(hub: Hub, actor: Actor, name: str, notify: Notify | None) -> dict[str, Any]:
    """Join a channel (idempotent); `notify` sets the level, else it stays as it was."""
    with hub.db.write() as session:
        require_channel(session, name)
        subscription = ensure_subscribed(session, name, actor.handle)
        if notify is not None:
            subscription.notify = notify
        answer = render_subscription(subscription)
    hub.notifier.notify({actor.handle})  # what the handle's streams hold has changed
    return answer


def unsubscribe(hub: Hub, actor: Actor, name: str) -> dict[str, Any]:
    """Leave a channel (idempotent)."""
    with hub.db.write() as session:
        require_channel(session, name)
        session.execute(
            delete(Subscription).where(
                Subscription.channel == name, Subscription.handle == actor.handle
            )
        )
    hub.notifier.notify({actor.handle})
    return {"channel": name, "handle": actor.handle, "notify": None, "subscribed": False}
