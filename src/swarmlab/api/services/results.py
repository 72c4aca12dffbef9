"""Results: posting claims, withdrawing them, verdicts, and the leaderboard.

A result is immutable once posted; only its withdrawal and its verification state change,
and both keep their history (withdrawn results stay in the record with their reason; every
verdict is a row in `verdicts`). Verification is compare-and-set on a version number, and a
human (organizer) verdict always wins over an automatic one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from swarmlab.api.auth import Actor
from swarmlab.api.errors import Conflict, Forbidden, Invalid, NotFound
from swarmlab.api.hub import Hub
from swarmlab.api.listing import Collection
from swarmlab.api.services.record import allocate_id, append_event
from swarmlab.db import utcnow
from swarmlab.db.models import Result, ResultLink, Verdict
from swarmlab.domain import ranking

VerdictState = Literal["pending", "valid", "invalid"]
# `verification_source` of a verdict set by hand: an organizer is a human, and humans win.
ORGANIZER_SOURCE: Final = "organizer"
RESULTS = Collection(
    key=Result.id,
    time=Result.created_at,
    agent=Result.author,
    type=Result.status,
    text=(Result.description, Result.method),
)


@dataclass(frozen=True)
class Claim:
    """A posted result's fields, before the hub stamps it."""

    fields: dict[str, Any]
    method: str
    status: str
    description: str
    builds_on: list[str]
    submission: str | None = None
    job: str | None = None
    provenance: str = "self-reported"


def render_result(result: Result, builds_on: list[str] | None = None) -> dict[str, Any]:
    """A result as the API shows it (score and guard under the challenge's field names)."""
    return {
        "id": result.id,
        "agent": result.author,
        **result.fields,
        "score": result.score,
        "guard": result.guard,
        "method": result.method,
        "status": result.status,
        "description": result.description,
        "submission": result.submission,
        "job": result.job,
        "provenance": result.provenance,
        "timestamp": result.created_at.isoformat(),
        "verification": result.verification,
        "verification_source": result.verification_source,
        "verification_version": result.verification_version,
        "withdrawn": result.withdrawn_at is not None,
        "withdrawn_at": result.withdrawn_at.isoformat() if result.withdrawn_at else None,
        "withdrawn_by": result.withdrawn_by,
        "withdraw_reason": result.withdraw_reason,
        **({"builds_on": builds_on} if builds_on is not None else {}),
    }


def _number(fields: dict[str, Any], name: str, required: bool) -> float | None:
    value = fields.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(
            f"`{name}` must be a finite number, got {value!r}",
            f"send the measured `{name}` as a JSON number",
            code="invalid_result",
        )
    return float(value)


# Keys the hub writes into a rendered result; a posted field may not reuse them.
SHOWN_FIELDS = frozenset(
    {
        "id",
        "agent",
        "score",
        "guard",
        "method",
        "status",
        "description",
        "submission",
        "job",
        "provenance",
        "timestamp",
        "verification",
        "verification_source",
        "verification_version",
        "withdrawn",
        "withdrawn_at",
        "withdrawn_by",
        "withdraw_reason",
        "builds_on",
        "verdicts",
    }
)


def _check_extra_fields(fields: dict[str, Any]) -> None:
    clashes = sorted(set(fields) & SHOWN_FIELDS)
    if clashes:
        raise Invalid(
            f"result fields {', '.join(clashes)} are set by the hub",
            "drop them; the hub stamps the id, author, time, provenance and verification",
            code="invalid_result",
        )
    bad = [k for k, v in fields.items() if not isinstance(v, str | int | float | bool)]
    if bad:
        raise Invalid(
            f"result fields must be numbers, strings or booleans: {', '.join(bad)} are not",
            "put structured details in a workspace file and cite its path",
            code="invalid_result",
        )


def check_claim(hub: Hub, claim: Claim) -> tuple[float, float | None]:
    """The (score, guard) of a claim; 422 naming any missing or malformed field."""
    scoring = hub.spec.scoring
    _check_extra_fields(claim.fields)
    present = {**claim.fields, "method": claim.method, "description": claim.description}
    missing = [f for f in scoring.required_fields if present.get(f) in (None, "")]
    if missing:
        raise Invalid(
            f"this challenge requires the fields: {', '.join(missing)}",
            f"add {', '.join(missing)} to the result (GET /v1 names the score field)",
            code="missing_fields",
        )
    score = _number(claim.fields, scoring.score_field, True)
    assert score is not None
    guard_field = scoring.guardrail.field if scoring.guardrail else None
    guard = (
        _number(claim.fields, guard_field, guard_field in scoring.required_fields)
        if guard_field
        else None
    )
    if not scoring.allow_self_reported and claim.job is None:
        raise Forbidden(
            "this challenge ranks only results measured by the hub",
            "submit your entry and run a job, then post the result with its `job` id",
        )
    return score, guard


def require_result(session: Session, result_id: str) -> Result:
    """The result with this id, or 404."""
    result = session.get(Result, result_id)
    if result is None:
        raise NotFound(
            f"no result has the id {result_id!r}",
            "copy the id from GET /v1/results or the leaderboard",
            code="unknown_result",
        )
    return result


def lineage(session: Session, result_id: str) -> list[str]:
    """The ids a result builds on."""
    return list(
        session.scalars(select(ResultLink.builds_on).where(ResultLink.result_id == result_id))
    )


def post_result(hub: Hub, actor: Actor, claim: Claim) -> Result:
    """Record a self-reported result; every `builds_on` id must exist."""
    score, guard = check_claim(hub, claim)
    with hub.db.write() as session:
        for parent in dict.fromkeys(claim.builds_on):
            require_result(session, parent)
        result_id, stamp = allocate_id(hub.db, session, Result, actor.handle)
        result = Result(
            id=result_id,
            stamp_ms=stamp,
            author=actor.handle,
            score=score,
            guard=guard,
            method=claim.method,
            status=claim.status,
            description=claim.description,
            fields=claim.fields,
            submission=claim.submission,
            job=claim.job,
            provenance=claim.provenance,
        )
        session.add(result)
        session.flush()
        session.add_all(
            ResultLink(result_id=result_id, builds_on=p) for p in dict.fromkeys(claim.builds_on)
        )
        event_id = append_event(
            session, "result", result_id, {"agent": actor.handle, "score": score}
        )
    hub.notifier.notify(set(), event_id)
    return result


def withdraw(hub: Hub, actor: Actor, result_id: str, reason: str) -> Result:
    """Take a result off the leaderboard (author or organizer); it stays in the record."""
    if not reason.strip():
        raise Invalid("a withdrawal needs a reason", "say why in `reason`; it stays on record")
    with hub.db.write() as session:
        result = require_result(session, result_id)
        if actor.handle != result.author and not actor.is_organizer:
            raise Forbidden(
                f"{actor.handle} cannot withdraw a result of {result.author}",
                "only its author or an organizer can; report problems to the organizers",
            )
        if result.withdrawn_at is not None:
            raise Conflict(
                f"{result_id} was already withdrawn by {result.withdrawn_by}",
                "nothing to do",
                code="already_withdrawn",
            )
        result.withdrawn_at, result.withdrawn_by, result.withdraw_reason = (
            utcnow(),
            actor.handle,
            reason,
        )
        hub.db.lock_records(session)
        event_id = append_event(
            session, "withdrawal", result_id, {"by": actor.handle, "reason": reason}
        )
    hub.notifier.notify(set(), event_id)
    return result


def set_verdict(
    hub: Hub,
    result_id: str,
    verdict: VerdictState,
    *,
    by: str,
    source: Literal["organizer", "auto"],
    note: str = "",
    expected_version: int | None = None,
) -> Result:
    """Record a verdict by compare-and-set on the result's verification version.

    409 when `expected_version` is stale, or when an automatic verdict would overrule a
    organizer's (human verdicts always win).
    """
    with hub.db.write() as session:
        result = require_result(session, result_id)
        if source == "auto" and result.verification_source == ORGANIZER_SOURCE:
            raise Conflict(
                f"{result_id} carries a human verdict, which an automatic one cannot replace",
                "ask an organizer to review it",
                code="human_verdict_wins",
            )
        version = result.verification_version if expected_version is None else expected_version
        _compare_and_set(session, result_id, version, verdict, source)
        session.add(
            Verdict(
                result_id=result_id,
                verdict=verdict,
                source=source,
                by=by,
                reason=note,
                version=version + 1,
            )
        )
        hub.db.lock_records(session)
        event_id = append_event(
            session, "verdict", result_id, {"verdict": verdict, "by": by, "source": source}
        )
        session.refresh(result)
    hub.notifier.notify(set(), event_id)
    return result


def _compare_and_set(
    session: Session, result_id: str, version: int, verdict: str, source: str
) -> None:
    """Move the result from `version` to `version + 1` with this verdict, or 409 if it moved."""
    changed = session.execute(
        update(Result)
        .where(Result.id == result_id, Result.verification_version == version)
        .values(verification=verdict, verification_source=source, verification_version=version + 1)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"the verification of {result_id} changed meanwhile (version {version} is stale)",
            "read the result again and send its current `verification_version`",
            code="version_conflict",
        )


def verdict_history(session: Session, result_id: str) -> list[dict[str, Any]]:
    """Every verdict on a result, oldest first."""
    verdicts = session.scalars(
        select(Verdict).where(Verdict.result_id == result_id).order_by(Verdict.id)
    )
    return [
        {
            "verdict": v.verdict,
            "source": v.source,
            "by": v.by,
            "note": v.reason,
            "version": v.version,
            "at": v.created_at.isoformat(),
        }
        for v in verdicts
    ]


def leaderboard(
    hub: Hub, *, best_per_agent: bool, verification: frozenset[str], limit: int
) -> dict[str, Any]:
    """The ranking under the challenge's scoring, with counts of what was left out and why."""
    scoring = hub.spec.scoring
    with hub.db.read() as session:
        results = list(session.scalars(select(Result).order_by(Result.id)))
    by_id = {r.id: r for r in results}
    candidates = [
        ranking.Candidate(
            r.id, r.author, r.score, r.guard, r.status, r.verification, r.withdrawn_at is not None
        )
        for r in results
    ]
    cap = scoring.guardrail.cap if scoring.guardrail else None
    ranked = ranking.rank(
        candidates,
        scoring.order.value,
        best_per_agent=best_per_agent,
        verification=verification,
        guard_cap=cap,
    )
    return {
        "score_field": scoring.score_field,
        "label": scoring.label,
        "unit": scoring.unit,
        "order": scoring.order.value,
        "guard_field": scoring.guardrail.field if scoring.guardrail else None,
        "guard_cap": cap,
        "rows": [_row(row, by_id[row.candidate.result_id]) for row in ranked.rows[:limit]],
        "excluded": ranked.excluded,
    }


def _row(row: ranking.Ranked, result: Result) -> dict[str, Any]:
    return {
        "rank": row.rank,
        "agent": result.author,
        "score": result.score,
        "guard": result.guard,
        "method": result.method,
        "verification": result.verification,
        "provenance": result.provenance,
        "result_id": result.id,
        "timestamp": result.created_at.isoformat(),
        "description": result.description,
    }
