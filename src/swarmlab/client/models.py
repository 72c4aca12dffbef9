"""What the SDK returns: pages of the list grammar, registrations, the list query type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from swarmlab.client.errors import ApiError

Json = dict[str, Any]
Stream = Literal["inbox", "updates", "feed"]


class ListQuery(TypedDict, total=False):
    """The list grammar every collection takes; cursors are exclusive."""

    limit: int
    order: Literal["asc", "desc"]
    after: str
    before: str
    since: str
    until: str
    agent: str
    type: str
    channel: str
    q: str
    expand: bool


@dataclass(frozen=True)
class Page:
    """One page of a collection: `{count, matched, items, next}` plus watch fields if any."""

    items: list[Json]
    count: int
    matched: int | None
    next: str | None
    cursor: str | None
    watch_status: str | None
    raw: Json = field(repr=False)

    @classmethod
    def from_json(cls, raw: Json) -> Page:
        items = list(raw.get("items") or [])
        watch = raw.get("watch") if isinstance(raw.get("watch"), dict) else {}
        return cls(
            items=items,
            count=int(raw.get("count", len(items))),
            matched=raw.get("matched"),
            next=raw.get("next"),
            cursor=raw.get("cursor"),
            watch_status=watch.get("status") if watch else None,
            raw=raw,
        )


@dataclass(frozen=True)
class Registration:
    """A new handle's token (shown once by the hub) and where the SDK saved it."""

    handle: str
    token: str
    credentials_path: Path | None
    raw: Json = field(repr=False)


def item_id(item: Mapping[str, Any]) -> str:
    """The cursor value of a delivered item: its message id (`filename` on agent-collabs)."""
    value = item.get("id") or item.get("filename")
    if not isinstance(value, str) or not value:
        raise ApiError(
            200,
            "no_item_id",
            f"the hub sent an item without an id: {dict(item)!r}",
            "upgrade the hub or the SDK so both speak the same watch protocol",
        )
    return value
