"""`Idempotency-Key` on POSTs: a retried request gets the first answer, not a second write.

The first request with a key claims it (a row in `idempotency`, keyed by the caller's token
hash and the key, so two callers never share keys); its answer is stored when it completes.
A retry replays that answer with `Idempotency-Replayed: true`. A retry while the first is
still running gets 409; server errors and 429s release the key so a retry runs again.
Answers that carry a secret (`Cache-Control: no-store`, e.g. a new token) are not stored:
their retries get 409 saying the secret was shown once. `WriteMiddleware` applies this.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from swarmlab.api.errors import error_response
from swarmlab.api.hub import Hub
from swarmlab.db import utcnow
from swarmlab.db.models import IdempotencyRecord

MAX_KEY = 200
KEEP_HOURS = 24
# A claim still unanswered after this long belongs to a request the hub never finished.
ABANDONED_AFTER = timedelta(minutes=10)


def caller_key(headers: Headers) -> str:
    """Whose keys these are: the sha256 of the Authorization header (never the token)."""
    return hashlib.sha256(headers.get("authorization", "").encode()).hexdigest()


def bad_key(key: str) -> Response | None:
    """A 422 answer for a malformed key, else None."""
    if key and len(key) <= MAX_KEY:
        return None
    return error_response(
        422, "invalid", f"Idempotency-Key must be 1-{MAX_KEY} characters", "send a uuid4"
    )


def claim(hub: Hub, actor: str, key: str, scope: Scope) -> IdempotencyRecord | None:
    """Claim `key` for this request; return the earlier record if it was already claimed.

    The caller's records older than KEEP_HOURS are dropped on the way: a retry comes within
    minutes, and the table must not grow forever.
    """
    try:
        # Unsynced: the request's own (synced) commit makes the claim durable with it.
        with hub.db.write(sync=False) as session:
            stale = utcnow() - timedelta(hours=KEEP_HOURS)
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.actor == actor, IdempotencyRecord.created_at < stale
                )
            )
            record = IdempotencyRecord(
                actor=actor, key=key, method=scope["method"], path=scope["path"]
            )
            session.add(record)
        return None
    except IntegrityError:
        with hub.db.read() as session:
            return session.get(IdempotencyRecord, (actor, key))


def settle(
    session: Session, actor: str, key: str, status: int, headers: Headers, body: bytes
) -> None:
    """Store the first answer, or release the key when a retry should run again."""
    if status >= 500 or status == 429:
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.actor == actor, IdempotencyRecord.key == key
            )
        )
        return
    row = session.get(IdempotencyRecord, (actor, key))
    if row is not None:
        secret = "no-store" in headers.get("cache-control", "")
        row.status, row.content_type = status, headers.get("content-type")
        row.body = None if secret else body


def replay(earlier: IdempotencyRecord, scope: Scope) -> Response:
    """The answer for a retried key."""
    if earlier.method != scope["method"] or earlier.path != scope["path"]:
        return error_response(
            422,
            "idempotency_key_reused",
            f"this Idempotency-Key was used for {earlier.method} {earlier.path}",
            "use a fresh key for every distinct request",
        )
    if earlier.status is None and utcnow() - earlier.created_at > ABANDONED_AFTER:
        return error_response(
            409,
            "idempotency_outcome_unknown",
            "the first request with this Idempotency-Key never finished (the hub stopped)",
            "check whether it took effect (e.g. GET /v1/messages?agent=<you>), then send it "
            "again with a new key if it did not",
        )
    if earlier.status is None:
        return error_response(
            409,
            "idempotency_in_progress",
            "the first request with this Idempotency-Key is still being handled",
            "retry in a moment to get its answer",
        )
    if earlier.body is None:
        return error_response(
            409,
            "idempotency_secret_not_replayed",
            "the first answer to this request carried a secret, which is shown only once",
            "the first answer is its only copy; if it is lost, register under a new id (a human:"
            " ask an organizer for a new invite), and ask an organizer to revoke the old handle"
            " (POST /v1/agents/{handle}/revoke)",
        )
    headers = {"Idempotency-Replayed": "true"}
    return Response(earlier.body, earlier.status, headers, media_type=earlier.content_type)
