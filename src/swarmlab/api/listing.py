"""The list grammar every collection speaks (agent-collabs' conventions).

Query parameters: `limit` (1-500, default 50), `order` (`desc` newest first, default, or
`asc`), exclusive cursors `after` / `before` (an item key), `since` / `until` (ISO 8601 times,
inclusive), `agent`, `type`, `channel`, `q` (case-insensitive substring), `expand` (accepted
for compatibility; items are always complete). Answers are `{count, matched, items, next}`:
`count` items in this page, `matched` items matching the filters regardless of cursors, and
`next` the key to pass as `after` (order=asc) or `before` (order=desc) for the next page, or
null on the last page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Query
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from swarmlab.api.errors import Invalid

T = TypeVar("T")
Column = InstrumentedAttribute[Any]
MAX_LIMIT = 500


@dataclass(frozen=True)
class ListParams:
    """A parsed list request."""

    limit: int = 50
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    agent: str | None = None
    type: str | None = None
    channel: str | None = None
    q: str | None = None


def list_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = 50,
    order: Annotated[Literal["asc", "desc"], Query(description="desc: newest first.")] = "desc",
    after: Annotated[str | None, Query(description="Only items after this key.")] = None,
    before: Annotated[str | None, Query(description="Only items before this key.")] = None,
    since: Annotated[datetime | None, Query(description="Only items at/after this time.")] = None,
    until: Annotated[datetime | None, Query(description="Only items at/before this time.")] = None,
    agent: Annotated[str | None, Query(description="Only items by this handle.")] = None,
    type: Annotated[str | None, Query(description="Only items of this type.")] = None,
    channel: Annotated[str | None, Query(description="Only items in this channel.")] = None,
    q: Annotated[str | None, Query(description="Case-insensitive substring.")] = None,
    expand: Annotated[bool, Query(description="Accepted for compatibility.")] = True,
) -> ListParams:
    """FastAPI dependency parsing the list grammar."""
    return ListParams(limit, order, after, before, since, until, agent, type, channel, q)


Listing = Annotated[ListParams, Depends(list_params)]


@dataclass(frozen=True)
class Collection:
    """Which columns of a collection the grammar's parameters act on."""

    key: Column
    key_type: Callable[[str], Any] = str
    time: Column | None = None
    agent: Column | None = None
    type: Column | None = None
    channel: Column | None = None
    text: Sequence[Column] = field(default_factory=tuple)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _unsupported(name: str) -> Invalid:
    return Invalid(
        f"this collection cannot be filtered by `{name}`",
        "drop that parameter; GET /v1 says which filters each collection takes",
    )


def _equal_filters(params: ListParams, c: Collection) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for name, column in (("agent", c.agent), ("type", c.type), ("channel", c.channel)):
        value = getattr(params, name)
        if value is not None:
            if column is None:
                raise _unsupported(name)
            conditions.append(column == value)
    return conditions


def filters(params: ListParams, c: Collection) -> list[ColumnElement[bool]]:
    """SQL conditions for every filter (not the cursors) in `params`."""
    conditions = _equal_filters(params, c)
    if params.since is not None or params.until is not None:
        if c.time is None:
            raise _unsupported("since/until")
        if params.since is not None:
            conditions.append(c.time >= params.since)
        if params.until is not None:
            conditions.append(c.time <= params.until)
    if params.q:
        if not c.text:
            raise _unsupported("q")
        pattern = _like(params.q)
        conditions.append(or_(*(col.ilike(pattern, escape="\\") for col in c.text)))
    return conditions


def _cursor(value: str, c: Collection) -> Any:
    try:
        return c.key_type(value)
    except ValueError as exc:
        raise Invalid(
            f"{value!r} is not a cursor of this collection",
            "pass back the `next` value or an item key from an earlier page",
        ) from exc


def cursors(params: ListParams, c: Collection) -> list[ColumnElement[bool]]:
    """SQL conditions for the exclusive `after` / `before` cursors."""
    conditions: list[ColumnElement[bool]] = []
    if params.after is not None:
        conditions.append(c.key > _cursor(params.after, c))
    if params.before is not None:
        conditions.append(c.key < _cursor(params.before, c))
    return conditions


def paginate(
    session: Session,
    stmt: Select[T],
    params: ListParams,
    c: Collection,
    render: Callable[[T], dict[str, Any]],
) -> dict[str, Any]:
    """Run `stmt` (a select of one entity) under the grammar and build the answer."""
    filtered = stmt.where(*filters(params, c))
    matched = session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
    ordering = c.key.asc() if params.order == "asc" else c.key.desc()
    page = filtered.where(*cursors(params, c)).order_by(ordering).limit(params.limit + 1)
    rows = list(session.scalars(page))
    items = [render(row) for row in rows[: params.limit]]
    more = len(rows) > params.limit
    last = getattr(rows[params.limit - 1], c.key.key) if more else None
    return {"count": len(items), "matched": matched, "items": items, "next": last}
