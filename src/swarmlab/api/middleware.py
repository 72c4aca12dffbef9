"""`WriteMiddleware`: the bookkeeping around every write request, in as few transactions as
possible (each SQLite commit is an fsync).

For a write (POST, PUT, PATCH, DELETE): claim the `Idempotency-Key` if a POST carries one
(one transaction; a retry is answered from the stored first answer), run the request, then
write its audit entry together with the idempotency outcome (one transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from swarmlab.api import audit, idempotency
from swarmlab.api.hub import Hub


@dataclass
class _Answer:
    """What the app sent back, kept for the audit log and the idempotency record."""

    status: int = 500
    headers: Headers = field(default_factory=lambda: Headers(raw=[]))
    body: bytearray = field(default_factory=bytearray)


class WriteMiddleware:
    """Audit every write and apply Idempotency-Key to POSTs."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in audit.WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        answer = _Answer()
        capture = self._capture(send, answer)
        claimed: tuple[str, str] | None = None
        try:
            early, claimed = await self._idempotency(scope)
            await (early or self.app)(scope, receive, capture)
        finally:
            await run_in_threadpool(self._settle, scope, answer, claimed)

    async def _idempotency(self, scope: Scope) -> tuple[Response | None, tuple[str, str] | None]:
        """(an answer to send instead of running the app, the claimed (caller, key))."""
        headers = Headers(scope=scope)
        key = headers.get("idempotency-key") if scope["method"] == "POST" else None
        if key is None:
            return None, None
        refusal = idempotency.bad_key(key)
        if refusal is not None:
            return refusal, None
        caller = idempotency.caller_key(headers)
        earlier = await run_in_threadpool(idempotency.claim, self.hub, caller, key, scope)
        if earlier is not None:
            return idempotency.replay(earlier, scope), None
        return None, (caller, key)

    @staticmethod
    def _capture(send: Send, answer: _Answer) -> Send:
        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = Headers(raw=message.get("headers", []))
            elif message["type"] == "http.response.body":
                answer.body.extend(message.get("body", b""))
            await send(message)

        return capture

    def _settle(self, scope: Scope, answer: _Answer, claimed: tuple[str, str] | None) -> None:
        """One transaction: the audit entry, and the idempotency outcome if a key was claimed."""
        with self.hub.db.write() as session:
            session.add(audit.entry_for(scope, answer.status))
            if claimed is not None:
                actor, key = claimed
                idempotency.settle(
                    session, actor, key, answer.status, answer.headers, bytes(answer.body)
                )
