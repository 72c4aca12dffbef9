"""What can go wrong when talking to a hub, one type per failure kind.

    SwarmlabError                 anything the SDK raises on purpose
    ├── ConfigError               no hub URL or token, unreadable credentials file
    ├── HubUnreachable            the hub did not answer (after the retries)
    │   └── StreamLost            an event stream could not reconnect (after its retries)
    └── ApiError                  the hub answered with an error envelope
        ├── InvalidRequest        400, 413, 422: fix the request
        ├── AuthError             401, 403: the token is missing, wrong, or not allowed
        ├── NotFound              404
        ├── Conflict              409: taken id, already-decided state
        ├── RateLimited           429: wait `retry_after` seconds
        └── ServerError           5xx: the hub failed; its log says why

Every message says what to do next: the hub's `hint` travels with its `message`.
"""

from __future__ import annotations

from typing import Any


class SwarmlabError(Exception):
    """Base of every error the SDK raises on purpose."""


class ConfigError(SwarmlabError):
    """The SDK does not know which hub to talk to, or with which token."""


class HubUnreachable(SwarmlabError):
    """No answer from the hub: it is down, the URL is wrong, or the network is."""

    def __init__(self, url: str, cause: BaseException) -> None:
        self.url = url
        self.cause = cause
        super().__init__(
            f"cannot reach the hub at {url} ({type(cause).__name__}: {cause}); "
            "check that the hub is running (`swarmlab serve`) and that SWARMLAB_URL "
            "or --url points at it"
        )


class StreamLost(HubUnreachable):
    """An event stream failed `attempts` (re)connections in a row and gave up.

    `last_event_id` is the last event it handed out (or where it started): resume from there.
    """

    def __init__(
        self, url: str, cause: BaseException, attempts: int, last_event_id: str | None
    ) -> None:
        super().__init__(url, cause)
        self.attempts = attempts
        self.last_event_id = last_event_id
        since = last_event_id if last_event_id is not None else "<the last id you handled>"
        self.args = (
            f"the event stream from {url} failed {attempts} (re)connections in a row "
            f"({type(cause).__name__}: {cause}); check that the hub is running "
            f"(`swarmlab serve`), then resume without losing events with "
            f"`Client.events(after={since})` or `swarmlab agent events --follow --since {since}`",
        )


class ApiError(SwarmlabError):
    """The hub refused a request; `code`, `message` and `hint` come from its error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.retry_after = retry_after
        text = f"{message} (HTTP {status}, {code})"
        super().__init__(f"{text}; {hint}" if hint else text)


class InvalidRequest(ApiError):
    """The request was malformed, too large or failed validation."""


class AuthError(ApiError):
    """The token is missing or wrong (401), or lacks the right to do this (403)."""


class NotFound(ApiError):
    """The named agent, message, result, channel or file does not exist."""


class Conflict(ApiError):
    """The request clashes with the record: a taken id, a decided state."""


class RateLimited(ApiError):
    """Too many writes; `retry_after` says how many seconds to wait."""


class ServerError(ApiError):
    """The hub failed while handling a valid request."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
}


def api_error(status: int, payload: Any, retry_after: float | None = None) -> ApiError:
    """Build the right ApiError from an HTTP status and a decoded error body.

    Hubs answer `{"error": {"code", "message", "hint"}}`; anything else (a proxy's HTML
    page, an empty body) still becomes an ApiError whose message shows what came back.
    """
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    envelope = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(envelope, dict):
        return kind(
            status,
            str(envelope.get("code", f"http_{status}")),
            str(envelope.get("message", "")),
            str(envelope.get("hint") or ""),
            retry_after,
        )
    shown = str(payload)[:200] if payload else "an empty body"
    return kind(
        status,
        f"http_{status}",
        f"the server answered {shown!r}, not a swarmlab API response",
        "check that the URL points at a swarmlab hub (`GET /v1` describes one)",
        retry_after,
    )
