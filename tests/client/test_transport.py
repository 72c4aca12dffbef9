"""The SDK's HTTP behaviour that needs no hub: headers, retries, error mapping, timeouts.

These run over `httpx.MockTransport`; everything that depends on what the hub answers is
tested against the real hub app in test_sdk_hub.py.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from swarmlab.client import (
    ApiError,
    AuthError,
    Client,
    Conflict,
    HubUnreachable,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
)

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, token: str | None = "tok") -> Client:
    return Client("http://hub.test/", token, httpx.MockTransport(handler), sleep=lambda _s: None)


def envelope(status: int, code: str, hint: str = "do this", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "hint": hint}}
    return httpx.Response(status, json=body, headers=headers)


def test_writes_carry_the_bearer_token_and_an_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "20260101-000000-000_a.md"})

    client_for(handler).post("hello @bob", type="note")
    (request,) = seen
    assert request.headers["Authorization"] == "Bearer tok"
    assert len(request.headers["Idempotency-Key"]) >= 16
    assert request.url.path == "/v1/messages"


def test_reads_without_a_token_send_no_authorization_and_no_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"count": 0, "matched": 0, "items": [], "next": None})

    client_for(handler, token=None).messages(limit=5, q="kv cache", expand=True)
    (request,) = seen
    assert "Authorization" not in request.headers
    assert "Idempotency-Key" not in request.headers
    assert dict(request.url.params) == {"limit": "5", "q": "kv cache", "expand": "true"}


def test_connection_failures_retry_the_post_with_the_same_idempotency_key() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(201, json={"id": "x", "mentions_delivered": []})

    assert client_for(handler).post("hi")["id"] == "x"
    assert len(keys) == 3 and len(set(keys)) == 1


def test_a_caller_supplied_idempotency_key_is_sent_as_is() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        return httpx.Response(201, json={"id": "x"})

    client_for(handler).post("hi", idempotency_key="plan-42")
    assert keys == ["plan-42"]


def test_an_unreachable_hub_names_the_url_and_what_to_check() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(HubUnreachable) as caught:
        client_for(handler).me()
    assert calls == 4  # the first try and three retries
    assert "http://hub.test" in str(caught.value)
    assert "SWARMLAB_URL" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidRequest),
        (401, AuthError),
        (403, AuthError),
        (404, NotFound),
        (409, Conflict),
        (413, InvalidRequest),
        (422, InvalidRequest),
        (500, ServerError),
        (418, ApiError),
    ],
)
def test_error_envelopes_become_typed_errors(status: int, kind: type[ApiError]) -> None:
    client = client_for(lambda _r: envelope(status, "some_code", hint="run X"))
    with pytest.raises(kind) as caught:
        client.me()
    error = caught.value
    assert (error.status, error.code, error.hint) == (status, "some_code", "run X")
    assert "some_code happened" in str(error) and "run X" in str(error)


def test_rate_limits_report_how_long_to_wait() -> None:
    client = client_for(lambda _r: envelope(429, "rate_limited", **{"Retry-After": "12"}))
    with pytest.raises(RateLimited) as caught:
        client.post("hi")
    assert caught.value.retry_after == 12


def test_a_non_swarmlab_error_body_still_explains_itself() -> None:
    client = client_for(lambda _r: httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(ServerError) as caught:
        client.me()
    assert caught.value.code == "http_502"
    assert "Bad gateway" in caught.value.message
    assert "swarmlab hub" in caught.value.hint


def test_long_polls_get_a_read_timeout_longer_than_their_wait() -> None:
    timeouts: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, json={"items": [], "cursor": None, "watch": {}})

    client = client_for(handler)
    client.inbox("alice", wait=55)
    client.inbox("alice")
    assert timeouts[0]["read"] > 55
    assert timeouts[1]["read"] == 30


def test_handles_and_file_paths_cannot_change_the_route() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        if request.url.path.startswith("/v1/files/"):
            return httpx.Response(200, content=b"data")
        return httpx.Response(200, json={"items": []})

    client = client_for(handler)
    client.inbox("a/b?x", limit=1)
    client.get_file("alice", "notes/run 1.md")
    assert paths[0].startswith("/v1/inbox/a%2Fb%3Fx?")
    assert paths[1] == "/v1/files/alice/notes/run%201.md"
