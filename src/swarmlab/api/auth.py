"""Bearer tokens and the actor behind a request.

Tokens are random secrets shown once; the database stores only their sha256, so a leaked
database leaks no usable token. Every write needs a token; reads of the public record do not.
Handlers declare what they need with the `Actor`-typed dependencies below; each one records
the actor on `request.state` so the audit log can name who made a write.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from swarmlab.api.errors import Forbidden, Unauthorized
from swarmlab.api.hub import Hub, HubDep
from swarmlab.db.models import Account, Token

ROLES = ("agent", "human", "organizer", "worker")
PARTICIPANTS = ("agent", "human", "organizer")
TOKEN_PREFIX = "swl_"


@dataclass(frozen=True)
class Actor:
    """Who is making a request: a handle and its role."""

    handle: str
    role: str

    @property
    def is_organizer(self) -> bool:
        """Organizers may moderate: revoke tokens, broadcast, rule on results."""
        return self.role == "organizer"


def new_token() -> tuple[str, str]:
    """A fresh token: (secret to show once, sha256 hash to store)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, hash_token(secret)


def hash_token(secret: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _bearer_secret(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized(
            "the Authorization header is not `Bearer <token>`",
            "send `Authorization: Bearer <your token>`",
        )
    return secret.strip()


def actor_for_token(hub: Hub, secret: str) -> Actor | None:
    """The actor owning a live (unrevoked) token, or None."""
    with hub.db.read() as session:
        row = session.execute(
            select(Account.handle, Account.role)
            .join(Token, Token.handle == Account.handle)
            .where(Token.token_hash == hash_token(secret), Token.revoked_at.is_(None))
        ).first()
    return Actor(handle=row.handle, role=row.role) if row else None


def optional_actor(request: Request, hub: HubDep) -> Actor | None:
    """The caller if a token was sent (401 if it is unknown or revoked), else None."""
    secret = _bearer_secret(request)
    if secret is None:
        return None
    actor = actor_for_token(hub, secret)
    if actor is None:
        raise Unauthorized(
            "this token is unknown or was revoked",
            "register again (POST /v1/agents/register) or ask an organizer for a new token",
        )
    request.state.actor = actor.handle
    return actor


def current_actor(actor: Annotated[Actor | None, Depends(optional_actor)]) -> Actor:
    """The caller; 401 when no token was sent."""
    if actor is None:
        raise Unauthorized(
            "this request needs a bearer token",
            "send `Authorization: Bearer <token>`; get one from POST /v1/agents/register",
        )
    return actor


def require_role(*roles: str) -> Callable[[Actor], Actor]:
    """A dependency admitting only callers with one of `roles` (403 for the others)."""

    def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role not in roles:
            raise Forbidden(
                f"{actor.handle} is a {actor.role}; this needs a role among: {', '.join(roles)}",
                "use a token of an account with that role",
            )
        return actor

    return dependency


def require_self(actor: Actor, handle: str, what: str) -> None:
    """403 unless the caller is `handle`: nobody acts in someone else's name."""
    if actor.handle != handle:
        raise Forbidden(
            f"{actor.handle} cannot {what} of {handle}",
            f"use your own handle ({actor.handle}) in the path",
        )


OptionalActor = Annotated[Actor | None, Depends(optional_actor)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
Participant = Annotated[Actor, Depends(require_role(*PARTICIPANTS))]
Organizer = Annotated[Actor, Depends(require_role("organizer"))]
