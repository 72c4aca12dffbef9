"""huggingface/agent-collabs' watcher (`backend/clients/collab_watch.sh`) works unchanged.

The script is not vendored; this test speaks to the hub exactly the way it does, as read from
its header and request code:

- streams: `GET /v1/updates?as=<handle>` and `GET /v1/inbox/<handle>`, with the query
  appended after `&` or `?` respectively;
- cold start: `limit=1&order=desc&expand=true` (no `wait`), cursor = the response's
  top-level `cursor`, or empty (then `after` is omitted) when the stream is empty;
- each wait: `[after=<cursor>&]order=asc&expand=true&limit=10&wait=<s>`; `wait` above the
  hub's ceiling is clamped, never refused;
- parsing without a JSON parser, so the serialization itself is the contract: the cursor is
  the `"cursor":"<filename>"` found after the last `]` of the body (compact JSON, no space
  after the colon); items are counted by `"filename":"<filename>"` occurrences; the watch
  status is `"status"` inside a flat `"watch":{...}` object;
- any 4xx is fatal (a typo'd handle must not look like an empty inbox), 5xx is retried.

Filenames match `[0-9]{8}-[0-9]{6}-[0-9]{3}_[a-z0-9][a-z0-9-]*\\.md`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from tests.fixtures.client import HUB_URL, SdkHub

FILENAME = r"[0-9]{8}-[0-9]{6}-[0-9]{3}_[a-z0-9][a-z0-9-]*\.md"


def page_cursor(body: str) -> str:
    """The watcher's cursor: `"cursor":"<filename>"` after the last `]`, else empty."""
    tail = body.rsplit("]", 1)[-1]
    found = re.findall(rf'"cursor":"({FILENAME})"', tail)
    return found[-1] if found else ""


def count_items(body: str) -> int:
    """The watcher's unread count: `"filename":"<filename>"` occurrences in the body."""
    return len(re.findall(rf'"filename":"{FILENAME}"', body))


def watch_status(body: str) -> str:
    """The watcher's reading of `watch.status` (flat object, no nested braces before it)."""
    found = re.findall(r'"watch":\{[^}]*"status":"([a-z_]*)"', body)
    return found[-1] if found else ""


class Watcher:
    """One handle's stream, requested with the watcher's exact URLs."""

    def __init__(self, http: httpx.Client, handle: str, stream: str) -> None:
        if stream == "updates":
            self.url, self.sep = f"/v1/updates?as={handle}", "&"
        else:
            self.url, self.sep = f"/v1/inbox/{handle}", "?"
        self.http = http
        self.cursor = ""

    def get(self, query: str) -> httpx.Response:
        return self.http.get(self.url + self.sep + query)

    def baseline(self) -> None:
        response = self.get("limit=1&order=desc&expand=true")
        assert response.status_code == 200, response.text
        self.cursor = page_cursor(response.text)

    def poll(self, wait: int) -> tuple[int, str, str]:
        """One wait step: (items, page cursor, watch status); advances like the script."""
        after = f"after={self.cursor}&" if self.cursor else ""
        response = self.get(f"{after}order=asc&expand=true&limit=10&wait={wait}")
        assert response.status_code == 200, response.text
        body = response.text
        items, cursor = count_items(body), page_cursor(body)
        if items:
            assert cursor, f"a page with items but no top-level cursor: {body}"
            self.cursor = cursor
        return items, cursor, watch_status(body)


@pytest.fixture
def http(sdk_hub: SdkHub) -> Iterator[httpx.Client]:
    """A plain client, like curl: no SDK in between."""
    with httpx.Client(base_url=HUB_URL, transport=sdk_hub.transport(), timeout=30) as client:
        yield client


@pytest.mark.parametrize("stream", ["updates", "inbox"])
def test_the_watcher_baselines_then_receives_only_new_mail(
    sdk_hub: SdkHub, http: httpx.Client, stream: str
) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    watcher = Watcher(http, "alice", stream)
    watcher.baseline()
    assert watcher.cursor == ""  # empty stream: no bound, `after` is omitted

    assert watcher.poll(wait=1)[::2] == (0, "timeout")

    first = bob.post("@alice old news")["id"]
    watcher.baseline()
    assert watcher.cursor == first
    assert watcher.poll(wait=1)[0] == 0  # history is not delivered

    second = bob.post("@alice can you check my numbers?")["id"]
    third = bob.post("@alice and these", refs=second)["id"]
    alice.post("unrelated, mentions nobody")
    assert watcher.poll(wait=1) == (2, third, "delivered")
    assert watcher.poll(wait=1)[0] == 0  # the cursor moved past both


@pytest.mark.parametrize("stream", ["updates", "inbox"])
def test_record_content_cannot_forge_a_cursor_or_an_item(
    sdk_hub: SdkHub, http: httpx.Client, stream: str
) -> None:
    sdk_hub.agent("alice")
    bob = sdk_hub.agent("bob")
    watcher = Watcher(http, "alice", stream)
    watcher.baseline()
    forged = '@alice ],"cursor":"99999999-999999-999_zzz.md" "filename":"99999999-999999-999_z.md"'
    real = bob.post(forged)["id"]
    assert watcher.poll(wait=1)[:2] == (1, real)


@pytest.mark.parametrize("stream", ["updates", "inbox"])
def test_a_wait_above_the_ceiling_is_clamped_not_refused(
    sdk_hub: SdkHub, http: httpx.Client, stream: str
) -> None:
    sdk_hub.agent("alice")
    watcher = Watcher(http, "alice", stream)
    watcher.baseline()
    sdk_hub.agent("bob").post("@alice ping")
    assert watcher.poll(wait=600)[0] == 1  # mail pending: answers at once, not 422


def test_a_human_handle_is_watchable(sdk_hub: SdkHub, http: httpx.Client) -> None:
    sdk_hub.human("ada")
    watcher = Watcher(http, "human-ada", "updates")
    watcher.baseline()
    sdk_hub.agent("bob").post("@human-ada please review")
    assert watcher.poll(wait=1)[0] == 1


@pytest.mark.parametrize("stream", ["updates", "inbox"])
def test_an_unknown_handle_is_a_4xx_not_an_empty_stream(
    sdk_hub: SdkHub, http: httpx.Client, stream: str
) -> None:
    response = Watcher(http, "nobody-here", stream).get("limit=1&order=desc&expand=true")
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


def test_the_status_check_answers_at_once(sdk_hub: SdkHub, http: httpx.Client) -> None:
    """`--status` and `--peek` send wait=0 and count the items: pending mail must show."""
    sdk_hub.agent("alice")
    watcher = Watcher(http, "alice", "updates")
    watcher.baseline()
    sdk_hub.agent("bob").post("@alice unread")
    after = f"after={watcher.cursor}&" if watcher.cursor else ""
    response = watcher.get(f"{after}order=asc&expand=true&limit=100&wait=0")
    assert response.status_code == 200 and count_items(response.text) == 1
