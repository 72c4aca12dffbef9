"""Per-handle rate limits from the challenge's `rate_limits`, kept in the database.

Each counted action is a row in `rate_hits` (a sliding-window log), so limits hold across
restarts and across several hub processes. Over a limit the API answers 429 with a
Retry-After of the seconds until the oldest counted action leaves the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated

from fastapi import Depends
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

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


def count_write(hub: Hub, actor: Actor) -> None:
    """Count a write against the challenge's `writes_per_minute` (organizers are exempt)."""
    if actor.role in EXEMPT_ROLES:
        return
    limit = hub.spec.rate_limits.writes_per_minute
    with hub.db.write() as session:
        hit(hub.db, session, actor.handle, "write", [(limit, 60)])


def writer(hub: HubDep, actor: Participant) -> Actor:
    """A participant making a write, counted against the write rate limit."""
    count_write(hub, actor)
    return actor


Writer = Annotated[Actor, Depends(writer)]
