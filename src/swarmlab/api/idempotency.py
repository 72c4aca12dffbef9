"""`Idempotency-Key` on POSTs: a retried request gets the first answer, not a second write.

The first request with a key claims it (a row in `idempotency`, keyed by the caller's token
hash and the key, so two callers never share keys); its answer is stored when it completes.
A retry replays that answer with `Idempotency-Replayed: true`. A retry while the first is
still running gets 409; server errors and 429s release the key so a retry runs again.
Answers that carry a secret (`Cache-Control: no-store`, e.g. a new token) are not stored:
their retries get 409 saying the secret was shown once.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from swarmlab.api.errors import error_response
from swarmlab.api.hub import Hub
from swarmlab.db.models import IdempotencyRecord

MAX_KEY = 200


def claim(hub: Hub, actor: str, key: str, scope: Scope) -> IdempotencyRecord | None:
    """Claim `key` for this request; return the earlier record if it was already claimed."""
    try:
        with hub.db.write() as session:
            session.add(
                IdempotencyRecord(actor=actor, key=key, method=scope["method"], path=scope["path"])
            )
        return None
    except IntegrityError:
        with hub.db.read() as session:
            return session.get(IdempotencyRecord, (actor, key))


def complete(
    hub: Hub, actor: str, key: str, status: int, kind: str | None, body: bytes | None
) -> None:
    """Store the first answer."""
    with hub.db.write() as session:
        row = session.get(IdempotencyRecord, (actor, key))
        if row is not None:
            row.status, row.content_type, row.body = status, kind, body


def release(hub: Hub, actor: str, key: str) -> None:
    """Forget a claim whose request failed on the server side."""
    with hub.db.write() as session:
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.actor == actor, IdempotencyRecord.key == key
            )
        )


def replay(earlier: IdempotencyRecord, scope: Scope) -> Response:
    """The answer for a retried key."""
    if earlier.method != scope["method"] or earlier.path != scope["path"]:
        return error_response(
            422,
            "idempotency_key_reused",
            f"this Idempotency-Key was used for {earlier.method} {earlier.path}",
            "use a fresh key for every distinct request",
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
            "look for the first answer; if it is lost, rotate the token (POST /v1/tokens/rotate)",
        )
    headers = {"Idempotency-Replayed": "true"}
    return Response(earlier.body, earlier.status, headers, media_type=earlier.content_type)


class IdempotencyMiddleware:
    """Apply Idempotency-Key semantics to every POST."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        key = headers.get("idempotency-key") if headers and scope["method"] == "POST" else None
        if headers is None or key is None:
            await self.app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY:
            bad = error_response(
                422, "invalid", f"Idempotency-Key must be 1-{MAX_KEY} characters", "send a uuid4"
            )
            await bad(scope, receive, send)
            return
        actor = hashlib.sha256(headers.get("authorization", "").encode()).hexdigest()
        earlier = await run_in_threadpool(claim, self.hub, actor, key, scope)
        if earlier is not None:
            await replay(earlier, scope)(scope, receive, send)
            return
        await self._first(scope, receive, send, actor, key)

    async def _first(
        self, scope: Scope, receive: Receive, send: Send, actor: str, key: str
    ) -> None:
        start: Message = {}
        body = bytearray()

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, keep)
        except BaseException:
            await run_in_threadpool(release, self.hub, actor, key)
            raise
        status = int(start.get("status", 500))
        if status >= 500 or status == 429:
            await run_in_threadpool(release, self.hub, actor, key)
            return
        answer = Headers(raw=start.get("headers", []))
        secret = "no-store" in answer.get("cache-control", "")
        stored = None if secret else bytes(body)
        await run_in_threadpool(
            complete, self.hub, actor, key, status, answer.get("content-type"), stored
        )
