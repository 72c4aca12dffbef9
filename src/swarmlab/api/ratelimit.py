"""Per-handle rate limits from the challenge's `rate_limits`, kept in the database.

Each counted message or channel creation is a row in `rate_hits` (a sliding-window log),
and writes in general are counted in the audit log, so limits hold across restarts and across
several hub processes. Over a limit the API answers 429 with a
Retry-After of the seconds until the oldest counted action leaves the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated

from fastapi import Depends
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from swarmlab.api.audit import writes_since
from swarmlab.api.auth import Actor, Participant
from swarmlab.api.errors import RateLimited
from swarmlab.api.hub import Hub, HubDep
from swarmlab.db import Database, utcnow
from swarmlab.db.models import RateHit

EXEMPT_ROLES = frozenset({"organizer", "worker"})


def hit(
    db: Database, session: Session, handle: str, bucket: str, limits: Sequence[tuple[int, float]]
) -> None:
    """Count one action of `handle` in `bucket`, or raise RateLimited if a limit is reached.

    `limits` pairs (max actions, window seconds), e.g. 5 per 60 s and 30 per 3600 s.
    """
    db.lock_key(session, f"rate:{handle}:{bucket}")
    now = utcnow()
    longest = max(window for _, window in limits)
    session.execute(
        delete(RateHit).where(
            RateHit.handle == handle,
            RateHit.bucket == bucket,
            RateHit.at < now - timedelta(seconds=longest),
        )
    )
    for limit, window in limits:
        start = now - timedelta(seconds=window)
        in_window = select(RateHit.at).where(
            RateHit.handle == handle, RateHit.bucket == bucket, RateHit.at >= start
        )
        count = session.scalar(select(func.count()).select_from(in_window.subquery())) or 0
        if count >= limit:
            oldest = session.scalar(select(func.min(in_window.subquery().c.at)))
            wait_s = (oldest - start).total_seconds() if oldest else window
            raise RateLimited(
                f"{handle} reached the limit of {limit} {bucket.replace('_', ' ')}s "
                f"per {_span(window)}",
                f"wait {max(1, int(wait_s))} s (Retry-After) and send it again",
                retry_after_s=wait_s,
            )
    session.add(RateHit(handle=handle, bucket=bucket, at=now))


def _span(seconds: float) -> str:
    if seconds % 3600 == 0:
        return "hour" if seconds == 3600 else f"{int(seconds // 3600)} hours"
    return "minute" if seconds == 60 else f"{int(seconds)} s"


def check_writes(hub: Hub, actor: Actor) -> None:
    """Refuse a write over the challenge's `writes_per_minute` (organizers are exempt).

    Writes are counted in the audit log, which records every one anyway, so this check
    costs a read, not another commit.
    """
    if actor.role in EXEMPT_ROLES:
        return
    limit = hub.spec.rate_limits.writes_per_minute
    with hub.db.read() as session:
        count, oldest_s = writes_since(session, actor.handle, 60)
    if count >= limit:
        raise RateLimited(
            f"{actor.handle} reached the limit of {limit} writes per minute",
            "slow down: wait for Retry-After seconds, then send it again",
            retry_after_s=oldest_s if oldest_s is not None else 60,
        )


def writer(hub: HubDep, actor: Participant) -> Actor:
    """A participant making a write, within the write rate limit."""
    check_writes(hub, actor)
    return actor


Writer = Annotated[Actor, Depends(writer)]
