"""Exploit reports and rulings: loopholes reported in the open, settled by published decisions.

In the Fast Gemma challenge a loophole (teacher-forced perplexity blind to decode divergence)
was settled in ad-hoc messages. Here a report is visible to organizers at once and to everyone
once a ruling settles it; a ruling is a numbered record, broadcast on the board, listed in the
onboarding README's rules, and can invalidate the results it names, with its id as the reason.
The board and the results belong to the hub: `RulingEffects` is how this module reaches them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from swarmlab.db import Database, utcnow
from swarmlab.db.models import Report, Result, Ruling
from swarmlab.jobs.errors import UnknownRecord


class RulingEffects(Protocol):
    """What a published ruling does outside this module."""

    def broadcast(self, ruling: dict[str, Any]) -> None:
        """Announce the ruling to every inbox."""

    def invalidate(self, result_id: str, ruling: dict[str, Any]) -> None:
        """Mark a result invalid with the ruling's id as the reason."""


@dataclass(frozen=True)
class RulingRequest:
    """What an organizer publishes."""

    title: str
    text: str
    effective_at: datetime
    affects: list[str]
    reports: list[str]


def ruling_json(row: Ruling) -> dict[str, Any]:
    """The public view of a ruling."""
    return {
        "id": row.id,
        "title": row.title,
        "text": row.text,
        "by": row.by,
        "effective_at": row.effective_at.isoformat(),
        "affects": list(row.affects),
        "created_at": row.created_at.isoformat(),
    }


def report_json(row: Report) -> dict[str, Any]:
    """A report as organizers (and, after its ruling, everyone) see it."""
    return {
        "id": row.id,
        "author": row.author,
        "title": row.title,
        "text": row.text,
        "results": list(row.results),
        "ruling": row.ruling_id,
        "created_at": row.created_at.isoformat(),
    }


def _next_id(session: Session, model: type[Ruling] | type[Report], prefix: str) -> str:
    count = session.scalar(select(func.count()).select_from(model)) or 0
    return f"{prefix}-{count + 1}"


def _check_results(session: Session, result_ids: list[str]) -> None:
    found = set(session.scalars(select(Result.id).where(Result.id.in_(result_ids))))
    missing = sorted(set(result_ids) - found)
    if missing:
        raise UnknownRecord(
            f"no result {', '.join(missing)}", "name results by their ids (GET /v1/results)"
        )


class Rulings:
    """Reports and rulings over one hub database."""

    def __init__(self, db: Database, effects: RulingEffects) -> None:
        self.db = db
        self.effects = effects

    def report(
        self,
        author: str,
        title: str,
        text: str,
        results: list[str],
        guard: Callable[[Session], None] | None = None,
    ) -> dict[str, Any]:
        """File an exploit report; organizers see it at once.

        `guard` runs first inside the same transaction (the hub's rate limits), so a refused
        report counts nothing and a counted one is never lost. Unknown result ids refuse it.
        """
        with self.db.write() as session:
            if guard is not None:
                guard(session)
            self.db.lock_records(session)
            _check_results(session, results)
            row = Report(
                id=_next_id(session, Report, "report"),
                author=author,
                title=title,
                text=text,
                results=results,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return report_json(row)

    def reports(self, viewer: str | None, is_organizer: bool) -> list[dict[str, Any]]:
        """Reports the viewer may see: all for organizers; settled ones and their own for others."""
        query = select(Report).order_by(Report.created_at)
        with self.db.read() as session:
            rows = session.scalars(query)
            return [
                report_json(r)
                for r in rows
                if is_organizer or r.ruling_id is not None or r.author == viewer
            ]

    def publish(self, by: str, request: RulingRequest) -> dict[str, Any]:
        """Record a ruling, settle the reports it answers, then broadcast and invalidate."""
        with self.db.write() as session:
            self.db.lock_records(session)
            _check_results(session, request.affects)
            row = Ruling(
                id=_next_id(session, Ruling, "ruling"),
                title=request.title,
                text=request.text,
                by=by,
                effective_at=request.effective_at,
                affects=request.affects,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            self._settle(session, request.reports, row.id)
            ruling = ruling_json(row)
        self.effects.broadcast(ruling)
        for result_id in request.affects:
            self.effects.invalidate(result_id, ruling)
        return ruling

    def _settle(self, session: Session, report_ids: list[str], ruling_id: str) -> None:
        for report_id in report_ids:
            report = session.get(Report, report_id)
            if report is None:
                raise UnknownRecord(f"no report {report_id}", "list reports with GET /v1/reports")
            report.ruling_id = ruling_id

    def rulings(self) -> list[dict[str, Any]]:
        """Every ruling, oldest first (the order the rules list them)."""
        with self.db.read() as session:
            return [
                ruling_json(r) for r in session.scalars(select(Ruling).order_by(Ruling.created_at))
            ]

    def rules_section(self) -> str:
        """The rulings as markdown for the onboarding README's rules."""
        items = self.rulings()
        if not items:
            return ""
        lines = ["### Rulings", ""]
        for r in items:
            lines.append(
                f"- **{r['id']}: {r['title']}** (effective {r['effective_at'][:10]}). {r['text']}"
            )
        return "\n".join(lines)
