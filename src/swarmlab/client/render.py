"""Rich tables for what the hub returns; imports only Rich and the standard library."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

Json = Mapping[str, Any]


def _first_line(text: object, width: int = 80) -> str:
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def author(item: Json) -> str:
    """Who wrote a message (hubs name the field `agent`; agent-collabs also `author`)."""
    return str(item.get("agent") or item.get("author") or "?")


def messages_table(items: Iterable[Json], title: str) -> Table:
    """Board, inbox or channel messages: id, author, type, channel, first line."""
    table = Table(title=title, show_lines=False)
    for column in ("id", "from", "type", "channel", "message"):
        table.add_column(column, overflow="fold" if column == "message" else "ellipsis")
    for item in items:
        _add_plain(
            table,
            str(item.get("id") or item.get("filename") or ""),
            author(item),
            str(item.get("type") or ""),
            str(item.get("channel") or ""),
            _first_line(item.get("body")),
        )
    return table


def message_line(item: Json) -> str:
    """One message on one line, for `--follow` output."""
    reasons = item.get("reasons")
    why = f" [{', '.join(map(str, reasons))}]" if isinstance(reasons, list) and reasons else ""
    ident = item.get("id") or item.get("filename")
    return f"{ident}  {author(item)}{why}: {_first_line(item.get('body'), 200)}"


def event_line(data: Json) -> str:
    """One hub event on one line: id, time, kind, what it is about, and its other fields."""
    known = {"id", "kind", "ref", "at"}
    extra = "  ".join(f"{k}={v}" for k, v in data.items() if k not in known and v is not None)
    head = f"{data.get('id')}  {data.get('at')}  {data.get('kind')}  {data.get('ref')}"
    return f"{head}  {extra}" if extra else head


def leaderboard_table(board: Json) -> Table:
    """Leaderboard rows with the challenge's score field as the score heading."""
    score = str(board.get("score_field") or "score")
    table = Table(title=f"Leaderboard ({score}, {board.get('order', 'desc')})")
    for column in ("rank", "agent", score, "guard", "method", "verification", "result"):
        table.add_column(column, justify="right" if column in ("rank", score, "guard") else "left")
    for row in board.get("rows") or []:
        _add_plain(
            table,
            str(row.get("rank", "")),
            str(row.get("agent", "")),
            _number(row.get("score")),
            _number(row.get("guard")),
            _first_line(row.get("method"), 40),
            str(row.get("verification", "")),
            str(row.get("result_id", "")),
        )
    return table


def results_table(items: Iterable[Json], score_fields: Iterable[str] = ()) -> Table:
    """Recent results: id, agent, the given score fields, status, verification."""
    fields = list(score_fields)
    table = Table(title="Results")
    for column in ("id", "agent", *fields, "status", "verification"):
        table.add_column(column)
    for item in items:
        scores = [_number(item.get(name)) for name in fields]
        status = "withdrawn" if item.get("withdrawn") else str(item.get("status", ""))
        _add_plain(
            table,
            str(item.get("id", "")),
            str(item.get("agent", "")),
            *scores,
            status,
            str(item.get("verification") or ""),
        )
    return table


def mapping_table(data: Json, title: str) -> Table:
    """A key/value table for one record (`me`, a posted result)."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        _add_plain(table, str(key), _plain(value))
    return table


def names_table(items: Iterable[Json], title: str, columns: Iterable[str]) -> Table:
    """A generic table of the named columns (agents, channels, watchers)."""
    names = list(columns)
    table = Table(title=title)
    for column in names:
        table.add_column(column)
    for item in items:
        _add_plain(table, *(_plain(item.get(column)) for column in names))
    return table


def _add_plain(table: Table, *cells: str) -> None:
    """Add a row shown verbatim: what agents write is data, never Rich markup."""
    table.add_row(*(Text(cell) for cell in cells))


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _plain(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    return _number(value)


def reports_table(items: Iterable[Json]) -> Table:
    """Exploit reports: id, author, title, the results named, the ruling that settled it."""
    table = Table(title="Exploit reports")
    for column in ("id", "from", "title", "results", "ruling"):
        table.add_column(column, overflow="fold" if column == "title" else "ellipsis")
    for item in items:
        _add_plain(
            table,
            str(item.get("id") or ""),
            str(item.get("author") or "?"),
            _first_line(item.get("title")),
            ", ".join(map(str, item.get("results") or [])),
            str(item.get("ruling") or "open"),
        )
    return table
