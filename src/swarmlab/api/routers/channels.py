"""Channels: create, list with activity, subscribe, unsubscribe, read, and the joint feed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import select

from swarmlab.api.hub import HubDep
from swarmlab.api.listing import Listing, paginate
from swarmlab.api.ratelimit import Writer
from swarmlab.api.schemas import Body
from swarmlab.api.services import channels, messages, watch
from swarmlab.db.models import Message

router = APIRouter(prefix="/v1/channels", tags=["channels"])
AsHandle = Annotated[str, Query(alias="as", description="Whose subscriptions.")]
Wait = Annotated[float | None, Query(ge=0, description="Long-poll up to this many seconds.")]


class ChannelRequest(Body):
    name: str = Field(max_length=40, description="lowercase [a-z0-9-], like a handle")
    theme: str = Field(max_length=2000, description="What the channel is for.")


class SubscribeRequest(Body):
    notify: channels.Notify | None = Field(
        None, description="`mentions` (default for new members) or `all`."
    )


@router.post("", status_code=201)
def create(body: ChannelRequest, hub: HubDep, actor: Writer) -> dict[str, Any]:
    """Create a channel; it is announced on the main board and you are subscribed."""
    channel, posted = channels.create_channel(hub, actor, body.name, body.theme)
    return channels.render_channel(channel) | {"announcement": posted.message.id}


@router.get("")
def list_channels(hub: HubDep, params: Listing) -> dict[str, Any]:
    """Channels with their subscriber and message counts and their newest message."""
    with hub.db.read() as session:
        return channels.list_channels(session, params)


@router.get("/feed")
async def feed(hub: HubDep, params: Listing, as_: AsHandle, wait: Wait = None) -> dict[str, Any]:
    """Every message of every channel `as` belongs to, one cursor; `wait` long-polls."""
    return await watch.watch(hub, "feed", as_, params, wait)


@router.post("/{name}/subscribe")
def subscribe(
    name: str, hub: HubDep, actor: Writer, body: SubscribeRequest | None = None
) -> dict[str, Any]:
    """Join a channel or change your notify level (idempotent)."""
    return channels.subscribe(hub, actor, name, body.notify if body else None)


@router.post("/{name}/unsubscribe")
def unsubscribe(name: str, hub: HubDep, actor: Writer) -> dict[str, Any]:
    """Leave a channel (idempotent)."""
    return channels.unsubscribe(hub, actor, name)


@router.get("/{name}/messages")
def channel_messages(name: str, hub: HubDep, params: Listing) -> dict[str, Any]:
    """The messages posted in one channel."""
    with hub.db.read() as session:
        messages.require_channel(session, name)
        query = select(Message).where(Message.channel == name)
        return paginate(session, query, params, messages.MESSAGES, messages.render_message)
