"""The harness's HTTP client for the endpoint contract, with a timeout on every request.

Every call either returns the parsed JSON body or raises one of: RequestTimeoutError (no
complete answer within the timeout: a hung server), ServerExitedError (the connection broke
and the server process is gone), EndpointError (non-200 status, a body that is not JSON, or a
missing field, named by its path, e.g. `choices[0].token_ids`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from swarmlab.bench.errors import EndpointError, RequestTimeoutError

FIELD_HINTS = {
    "token_ids": (
        "the endpoint must return the generated token ids when a request sends "
        "`return_token_ids: true` (vLLM does; wrap other backends in an adapter)"
    ),
    "prompt_logprobs": (
        "the endpoint must return per-position prompt log-probabilities when a request sends "
        "`prompt_logprobs: 1` (vLLM does; wrap other backends in an adapter)"
    ),
    "usage": "the endpoint must report token counts in `usage`, as OpenAI's API does",
}


@dataclass(frozen=True)
class Timed:
    """A response body and the wall time of the HTTP exchange that produced it."""

    body: dict[str, Any]
    seconds: float


class EndpointClient:
    """POSTs to one OpenAI-compatible server; one instance per run, reusing its connection."""

    def __init__(
        self,
        base_url: str,
        model: str,
        timeout_s: Callable[[], float],
        on_broken: Callable[[], None] = lambda: None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`timeout_s()` gives each request's timeout (it shrinks as a run's deadline nears);
        `on_broken()` runs when a connection fails and may raise a better error (the server died).
        """
        self.model = model
        self._timeout_s = timeout_s
        self._on_broken = on_broken
        self._http = httpx.Client(base_url=base_url, transport=transport)

    def post(self, path: str, payload: dict[str, Any]) -> Timed:
        """POST JSON and return the parsed body; `seconds` covers send to last byte received."""
        timeout = self._timeout_s()
        started = time.perf_counter()
        try:
            response = self._http.post(path, json=payload, timeout=httpx.Timeout(timeout))
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(
                f"POST {path} got no complete answer within {timeout:.0f} s: the server hangs "
                "or is far too slow (see server.log)"
            ) from exc
        except httpx.TransportError as exc:
            self._on_broken()
            raise EndpointError(f"POST {path} failed: {exc!r}; see server.log") from exc
        seconds = time.perf_counter() - started
        return Timed(_json_body(path, response), seconds)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def _json_body(path: str, response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise EndpointError(
            f"POST {path} answered HTTP {response.status_code}: {response.text[:500]}"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise EndpointError(f"POST {path} answered a body that is not JSON") from exc
    if not isinstance(body, dict):
        raise EndpointError(f"POST {path} answered JSON that is not an object")
    return body


def require(body: dict[str, Any], path: str) -> Any:
    """The value at a dotted path like `choices[0].token_ids`, or EndpointError naming it."""
    value: Any = body
    parts = path.replace("[", ".[").split(".")
    for part in parts:
        if part.startswith("["):
            index = int(part[1:-1])
            ok = isinstance(value, list) and len(value) > index
            value = value[index] if ok else None
        else:
            ok = isinstance(value, dict) and value.get(part) is not None
            value = value.get(part) if ok else None
        if not ok:
            hints = [FIELD_HINTS[p] for p in parts if p in FIELD_HINTS]
            hint = hints[-1] if hints else "see the endpoint contract in docs/harness.md"
            raise EndpointError(f"the response has no `{path}`: {hint}")
    return value


def optional_text(body: dict[str, Any], *path: str) -> str:
    """`choices[0].<path>` when it is a string, else "" (generated text is informative only)."""
    choices = body.get("choices")
    value: Any = choices[0] if isinstance(choices, list) and choices else None
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""
