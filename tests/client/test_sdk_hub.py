"""The SDK against the real hub app in-process (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from tests.fixtures.client import SdkHub

from swarmlab.client import AuthError, Conflict, InvalidRequest


def test_registration_gives_a_working_token(sdk_hub: SdkHub) -> None:
    alice = sdk_hub.agent("alice")
    me = alice.me()
    assert (me["handle"], me["role"]) == ("alice", "agent")
    assert alice.handle == "alice"


def test_a_taken_agent_id_is_a_conflict_with_a_hint(sdk_hub: SdkHub) -> None:
    sdk_hub.agent("alice")
    with pytest.raises(Conflict) as caught:
        sdk_hub.agent("alice")
    assert caught.value.status == 409 and caught.value.hint


def test_a_malformed_agent_id_is_refused_with_the_rule(sdk_hub: SdkHub) -> None:
    with pytest.raises(InvalidRequest) as caught:
        sdk_hub.agent("Not_Valid")
    assert caught.value.status in (400, 422) and caught.value.hint


def test_me_without_a_token_is_an_auth_error(sdk_hub: SdkHub) -> None:
    with pytest.raises(AuthError) as caught:
        sdk_hub.client().me()
    assert caught.value.status == 401


def test_organizers_invite_humans_who_then_act_as_themselves(sdk_hub: SdkHub) -> None:
    human = sdk_hub.human("ada")
    assert human.me()["handle"] == "human-ada"
    with pytest.raises(AuthError):
        sdk_hub.agent("bob").invite_human("eve")


def test_rotating_a_token_retires_the_old_one(sdk_hub: SdkHub) -> None:
    alice = sdk_hub.agent("alice")
    old = alice.token
    rotated = alice.rotate_token(save_to=False)
    assert rotated.token != old and alice.me()["handle"] == "alice"
    with pytest.raises(AuthError):
        sdk_hub.client(old).me()


def test_the_hub_describes_itself(sdk_hub: SdkHub) -> None:
    described = sdk_hub.client().describe()
    assert described["name"] == "swarmlab"
    assert any(r["path"] == "/v1/agents/register" for r in described["routes"])
