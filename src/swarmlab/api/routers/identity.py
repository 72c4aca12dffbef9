"""Identity: register agents, invite humans, rotate and revoke tokens, `GET /v1/me`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field
from sqlalchemy import select

from swarmlab.api.auth import CurrentActor, Organizer
from swarmlab.api.hub import HubDep
from swarmlab.api.listing import Listing, paginate
from swarmlab.api.schemas import Body
from swarmlab.api.services import identity
from swarmlab.db.models import Account

router = APIRouter(prefix="/v1", tags=["identity"])

SECRET_HINT = "store this token now: it is shown once and the hub keeps only its hash"


class RegisterRequest(Body):
    agent_id: str = Field(max_length=40, description="lowercase [a-z0-9-], 1-40 characters")
    model: str = Field(max_length=200, description="The model behind the agent.")
    harness: str = Field(max_length=200, description="The agent harness, e.g. claude-code.")
    tools: list[str] = Field(default_factory=list, max_length=50)
    bio: str = Field("", max_length=2000)
    invite: str | None = Field(None, max_length=200, description="Invite code, if required.")


class HumanRequest(Body):
    name: str = Field(max_length=40, description="The human's name; the handle is human-<name>.")
    bio: str = Field("", max_length=2000)


def _with_token(response: Response, payload: dict[str, Any], secret: str) -> dict[str, Any]:
    """A body carrying a secret: marked no-store so no cache or idempotency replay keeps it."""
    response.headers["Cache-Control"] = "no-store"
    return {**payload, "token": secret, "hint": SECRET_HINT}


@router.post("/agents/register", status_code=201)
def register(body: RegisterRequest, hub: HubDep, response: Response) -> dict[str, Any]:
    """Register an agent; the answer holds its bearer token, shown once."""
    profile = body.model_dump(exclude={"agent_id"})
    account, secret = identity.register_agent(hub, body.agent_id, profile)
    return _with_token(response, identity.render_account(account), secret)


@router.get("/agents")
def list_accounts(hub: HubDep, params: Listing) -> dict[str, Any]:
    """Every registered handle (agents, humans, organizers); `type` filters by role."""
    with hub.db.read() as session:
        return paginate(
            session, select(Account), params, identity.ACCOUNTS, identity.render_account
        )


@router.get("/agents/{handle}")
def get_account(handle: str, hub: HubDep) -> dict[str, Any]:
    """One account's public profile."""
    with hub.db.read() as session:
        return identity.render_account(identity.get_account(session, handle))


@router.post("/agents/{handle}/revoke")
def revoke(handle: str, hub: HubDep, organizer: Organizer) -> dict[str, Any]:
    """Organizers: revoke every token of `handle` (it must be re-issued to act again)."""
    return {"handle": handle, "revoked": identity.revoke_tokens(hub, organizer, handle)}


@router.post("/humans", status_code=201)
def invite_human(
    body: HumanRequest, hub: HubDep, organizer: Organizer, response: Response
) -> dict[str, Any]:
    """Organizers: create a human account `human-<name>` and hand its token over."""
    account, secret = identity.invite_human(hub, organizer, body.name, body.bio)
    return _with_token(response, identity.render_account(account), secret)


@router.post("/tokens/rotate")
def rotate(hub: HubDep, actor: CurrentActor, response: Response) -> dict[str, Any]:
    """Replace the caller's token: every old token stops working at once."""
    secret = identity.rotate_token(hub, actor)
    return _with_token(response, {"handle": actor.handle, "role": actor.role}, secret)


@router.get("/me")
def me(hub: HubDep, actor: CurrentActor) -> dict[str, Any]:
    """Who this token belongs to."""
    with hub.db.read() as session:
        return identity.render_account(identity.get_account(session, actor.handle))
