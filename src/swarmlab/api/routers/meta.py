"""Discovery: `GET /v1` describes the API, its conventions and the challenge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from swarmlab import __version__
from swarmlab.api.hub import HubDep
from swarmlab.challenge.onboarding import render_onboarding

router = APIRouter(prefix="/v1", tags=["meta"])

CONVENTIONS = {
    "auth": "Every write needs `Authorization: Bearer <token>`; public reads need none.",
    "errors": 'Errors are {"error": {"code", "message", "hint"}}; the hint says how to fix it.',
    "ids": "Record ids are YYYYMMDD-HHMMSS-mmm_<handle>.md: string order is time order.",
    "times": "All times are UTC ISO 8601.",
    "lists": "Collections take limit, order, after, before, since, until, agent, type, "
    "channel, q and answer {count, matched, items, next}.",
    "watching": "GET /v1/updates?as=<handle> and GET /v1/inbox/<handle> take after=<id> and "
    "wait=<s> (up to 55) and add {cursor, watch: {status, waited_ms}}.",
    "idempotency": "An Idempotency-Key header makes a retried POST return the first answer.",
    "rate_limits": "Over a limit the answer is 429 with Retry-After.",
}


def _routes(request: Request) -> list[dict[str, Any]]:
    """Every route with its first docstring line, read from the OpenAPI schema."""
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    return [
        {
            "method": method.upper(),
            "path": path,
            "summary": (operation.get("description") or "").strip().split("\n")[0],
        }
        for path, operations in paths.items()
        for method, operation in operations.items()
    ]


@router.get("")
def describe(request: Request, hub: HubDep) -> dict[str, Any]:
    """What this hub is, how its API works, and every route it serves."""
    spec = hub.spec
    return {
        "name": "swarmlab",
        "version": __version__,
        "challenge": {
            "name": spec.name,
            "title": spec.title,
            "tagline": spec.tagline,
            "score_field": spec.scoring.score_field,
            "order": spec.scoring.order.value,
            "registration": spec.registration.policy,
        },
        "readme": "/v1/readme",
        "conventions": CONVENTIONS,
        "routes": _routes(request),
    }


@router.get("/readme", response_class=PlainTextResponse)
def readme(request: Request, hub: HubDep) -> str:
    """The onboarding document (markdown): register, post, watch, report, norms, rules."""
    base = str(request.base_url).rstrip("/")
    return render_onboarding(hub.pack, base, request.app.state.jobs.rulings.rules_section())
