"""Accounts and tokens: registration, human invites, rotation, revocation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from swarmlab.api.auth import Actor, new_token
from swarmlab.api.errors import Conflict, Forbidden, Invalid, NotFound
from swarmlab.api.hub import Hub
from swarmlab.api.listing import Collection
from swarmlab.db import Database, utcnow
from swarmlab.db.models import Account, Token
from swarmlab.domain import ids

ORGANIZER = "organizer"
ACCOUNTS = Collection(
    key=Account.handle,
    time=Account.created_at,
    agent=Account.handle,
    type=Account.role,
    text=(Account.handle, Account.bio, Account.model, Account.harness),
)


def render_account(account: Account) -> dict[str, Any]:
    """The public profile of an account."""
    return {
        "agent_id": account.handle,
        "handle": account.handle,
        "role": account.role,
        "model": account.model,
        "harness": account.harness,
        "tools": account.tools,
        "bio": account.bio,
        "invited_by": account.invited_by,
        "created_at": account.created_at.isoformat(),
    }


def _create(db: Database, account: Account) -> str:
    """Insert an account with a first token; return the token's secret. 409 if taken."""
    secret, token_hash = new_token()
    try:
        with db.write() as session:
            session.add(account)
            session.flush()
            session.add(Token(handle=account.handle, token_hash=token_hash))
    except IntegrityError as exc:
        raise Conflict(
            f"the handle {account.handle!r} is taken",
            "pick another id; handles are bound to their first owner for good",
            code="handle_taken",
        ) from exc
    return secret


def _check_invite(hub: Hub, invite: str | None) -> None:
    registration = hub.spec.registration
    if registration.policy == "invite" and invite not in registration.invite_codes:
        raise Forbidden(
            "this hub registers agents by invite code only, and this code is missing or unknown",
            "ask an organizer for an invite code and send it as `invite`",
            code="invite_required",
        )


def register_agent(hub: Hub, agent_id: str, profile: dict[str, Any]) -> tuple[Account, str]:
    """Register an agent under the challenge's registration policy."""
    try:
        ids.check_agent_id(agent_id)
    except ids.InvalidHandle as exc:
        raise Invalid(
            str(exc), "choose an id like `fast-llama-7`", code="invalid_agent_id"
        ) from exc
    _check_invite(hub, profile.pop("invite", None))
    account = Account(handle=agent_id, role="agent", **profile)
    return account, _create(hub.db, account)


def invite_human(hub: Hub, organizer: Actor, name: str, bio: str) -> tuple[Account, str]:
    """Create a human account `human-<name>` on an organizer's invitation."""
    try:
        handle = ids.human_handle(name)
    except ids.InvalidHandle as exc:
        raise Invalid(
            str(exc), "use a short lowercase name like `ada`", code="invalid_name"
        ) from exc
    account = Account(handle=handle, role="human", bio=bio, invited_by=organizer.handle)
    return account, _create(hub.db, account)


def _revoke_all(session: Session, handle: str, by: str) -> int:
    result = session.execute(
        update(Token)
        .where(Token.handle == handle, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_by=by)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def rotate_token(hub: Hub, actor: Actor) -> str:
    """Revoke every token of the caller and issue a new one."""
    secret, token_hash = new_token()
    with hub.db.write() as session:
        _revoke_all(session, actor.handle, actor.handle)
        session.add(Token(handle=actor.handle, token_hash=token_hash))
    return secret


def revoke_tokens(hub: Hub, organizer: Actor, handle: str) -> int:
    """An organizer cuts a handle off: every live token of it stops working."""
    with hub.db.write() as session:
        if session.get(Account, handle) is None:
            raise not_found_account(handle)
        return _revoke_all(session, handle, organizer.handle)


def get_account(session: Session, handle: str) -> Account:
    """The account of `handle`, or 404."""
    account = session.get(Account, handle)
    if account is None:
        raise not_found_account(handle)
    return account


def not_found_account(handle: str) -> NotFound:
    """The 404 for an unknown handle."""
    return NotFound(
        f"no account is registered as {handle!r}",
        "check the spelling; GET /v1/agents lists every handle",
        code="unknown_handle",
    )


def ensure_organizer(db: Database) -> str | None:
    """Create the `organizer` account on first start; return its token then, else None."""
    with db.read() as session:
        if session.scalar(select(Account.handle).where(Account.handle == ORGANIZER)):
            return None
    try:
        return _create(db, Account(handle=ORGANIZER, role="organizer", bio="Hub organizer"))
    except Conflict:
        return None  # another process created it first
