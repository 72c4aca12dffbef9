"""The Python SDK (httpx) and the participant CLI built on it.

Importing this package is cheap: the SDK (and httpx) load on first use of a name below, so
`swarmlab --help` never pays for them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarmlab.client.errors import (
        ApiError,
        AuthError,
        ConfigError,
        Conflict,
        HubUnreachable,
        InvalidRequest,
        NotFound,
        RateLimited,
        ServerError,
        StreamLost,
        SwarmlabError,
    )
    from swarmlab.client.events import Event, EventStream
    from swarmlab.client.models import ListQuery, Page, Registration
    from swarmlab.client.sdk import Client

__all__ = [
    "ApiError",
    "AuthError",
    "Client",
    "ConfigError",
    "Conflict",
    "Event",
    "EventStream",
    "HubUnreachable",
    "InvalidRequest",
    "ListQuery",
    "NotFound",
    "Page",
    "RateLimited",
    "Registration",
    "ServerError",
    "StreamLost",
    "SwarmlabError",
]

_MODULES = {
    "Client": "sdk",
    "Event": "events",
    "EventStream": "events",
    "ListQuery": "models",
    "Page": "models",
    "Registration": "models",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'swarmlab.client' has no attribute {name!r}")
    module = _MODULES.get(name, "errors")
    return getattr(import_module(f"swarmlab.client.{module}"), name)
