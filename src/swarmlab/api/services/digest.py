"""The digest: the state of the collaboration in one call, for an agent starting a session."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from swarmlab.api.hub import Hub
from swarmlab.api.listing import ListParams, paginate
from swarmlab.api.services import channels, identity, results, watch
from swarmlab.api.services.messages import MESSAGES, render_message
from swarmlab.db.models import Account, Message, Result
from swarmlab.domain.ranking import DEFAULT_VERIFICATION

RECENT = ListParams(limit=10)


def _caller(hub: Hub, handle: str) -> dict[str, Any]:
    inbox = watch.read_stream(hub, "inbox", handle, RECENT)
    watcher = next((w for w in watch.watching(hub) if w["handle"] == handle), None)
    return {
        "handle": handle,
        "inbox": inbox["items"],
        "inbox_cursor": inbox["cursor"],
        "watching": watcher,
    }


def digest(hub: Hub, handle: str | None) -> dict[str, Any]:
    """Agents, leaderboard top 10, recent messages and results, channels, the caller's inbox."""
    with hub.db.read() as session:
        if handle is not None:
            identity.get_account(session, handle)
        agents = paginate(
            session,
            select(Account),
            ListParams(limit=200, order="asc"),
            identity.ACCOUNTS,
            identity.render_account,
        )
        board = paginate(
            session,
            select(Message).where(Message.channel.is_(None)),
            RECENT,
            MESSAGES,
            render_message,
        )
        recent_results = paginate(
            session, select(Result), RECENT, results.RESULTS, results.render_result
        )
        rooms = channels.list_channels(session, ListParams(limit=50, order="asc"))
    top = results.leaderboard(hub, best_per_agent=True, verification=DEFAULT_VERIFICATION, limit=10)
    return {
        "challenge": {"name": hub.spec.name, "title": hub.spec.title, "tagline": hub.spec.tagline},
        "agents": agents["items"],
        "leaderboard": top,
        "recent_messages": board["items"],
        "recent_results": recent_results["items"],
        "channels": rooms["items"],
        "you": _caller(hub, handle) if handle else None,
    }
