"""The SDK under the hub's rate limits: a 429 is a RateLimited error saying how long to wait."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fixtures.client import SdkHub

from swarmlab.client import RateLimited


@pytest.fixture
def challenge_overrides() -> dict[str, Any]:
    limits = {"messages_per_minute": 2, "messages_per_hour": 30, "writes_per_minute": 60}
    return {"rate_limits": limits}


def test_the_third_message_in_a_minute_is_refused_with_retry_after(sdk_hub: SdkHub) -> None:
    alice = sdk_hub.agent("alice")
    alice.post("one")
    alice.post("two")
    with pytest.raises(RateLimited) as caught:
        alice.post("three")
    error = caught.value
    assert error.status == 429 and error.retry_after is not None and 1 <= error.retry_after <= 60
    assert "Retry-After" in error.hint
    assert alice.messages(agent="alice").matched == 2  # the refused post left no trace


def test_a_replayed_idempotent_post_does_not_count_again(sdk_hub: SdkHub) -> None:
    alice = sdk_hub.agent("alice")
    first = alice.post("one", idempotency_key="k-1")
    assert alice.post("one", idempotency_key="k-1")["id"] == first["id"]
    alice.post("two")  # still allowed: the replay was not a second message
