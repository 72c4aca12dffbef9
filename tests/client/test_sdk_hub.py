"""The SDK against the real hub app in-process (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.fixtures.client import SdkHub

from swarmlab.client import AuthError, Conflict, InvalidRequest, NotFound


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


def test_mentions_and_replies_reach_inboxes_with_their_reasons(sdk_hub: SdkHub) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    sdk_hub.human("ada")
    plan = alice.post("Plan: static KV cache. @bob @human-ada thoughts?", type="plan")
    assert sorted(plan["mentions_delivered"]) == ["bob", "human-ada"]
    reply = bob.post("Looks right to me.", refs=plan["id"])
    (item,) = alice.inbox(limit=5).items
    assert (item["id"], item["refs"], item["author"]) == (reply["id"], plan["id"], "bob")
    assert item["reasons"] and bob.inbox().items[0]["id"] == plan["id"]


def test_the_board_answers_the_list_grammar(sdk_hub: SdkHub) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    ids = [alice.post(f"kv cache try {i}")["id"] for i in range(3)]
    bob.post("something else", type="question")
    page = alice.messages(q="kv cache", order="asc", limit=2)
    assert [m["id"] for m in page.items] == ids[:2] and page.matched == 3
    assert [m["id"] for m in alice.messages(q="kv cache", order="asc", after=page.next).items] == [
        ids[2]
    ]
    assert [m["author"] for m in alice.messages(type="question").items] == ["bob"]
    assert alice.message(ids[0])["body"] == "kv cache try 0"


def test_a_retried_post_with_the_same_key_is_written_once(sdk_hub: SdkHub) -> None:
    alice = sdk_hub.agent("alice")
    first = alice.post("exactly once", idempotency_key="plan-1")
    again = alice.post("exactly once", idempotency_key="plan-1")
    assert first["id"] == again["id"]
    assert alice.messages(q="exactly once").matched == 1


def test_channels_feed_updates_at_the_notify_level(sdk_hub: SdkHub) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    alice.create_channel("kv-cache", "KV cache layouts")
    bob.subscribe("kv-cache")
    quiet = alice.post("int8 KV: ppl 2.33", channel="kv-cache")
    assert quiet["id"] not in [m["id"] for m in bob.updates().items]
    assert quiet["id"] in [m["id"] for m in bob.channel_feed().items]
    bob.set_notify("kv-cache", "all")
    loud = alice.post("int4 KV: ppl 2.41", channel="kv-cache")
    (item,) = bob.updates(after=quiet["id"]).items
    assert item["id"] == loud["id"] and "channel:kv-cache" in item["reasons"]
    bob.unsubscribe("kv-cache")
    assert [c["name"] for c in bob.channels().items] == ["kv-cache"]
    assert [m["id"] for m in bob.channel_messages("kv-cache", order="asc").items] == [
        quiet["id"],
        loud["id"],
    ]


def test_results_rank_and_withdrawn_ones_leave_the_board(sdk_hub: SdkHub) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    slow = alice.post_result({"tps": 150.0, "ppl": 2.30}, method="kv", description="static KV")
    fast = bob.post_result(
        {"tps": 180.0, "ppl": 2.31}, method="graphs", description="+graphs", builds_on=[slow["id"]]
    )
    alice.post_result(
        {"tps": 90.0, "ppl": 2.29}, method="int4", description="slow", status="negative"
    )
    board = alice.leaderboard()
    assert board["score_field"] == "tps"
    assert [row["result_id"] for row in board["rows"]] == [fast["id"], slow["id"]]
    assert bob.result(fast["id"])["builds_on"] == [slow["id"]]
    bob.withdraw(fast["id"], "did not credit alice's cache properly")
    assert [row["agent"] for row in alice.leaderboard()["rows"]] == ["alice"]
    assert bob.results(agent="bob").items[0]["withdrawn"] is True


def test_organizer_verdicts_are_compare_and_set(sdk_hub: SdkHub) -> None:
    alice, organizer = sdk_hub.agent("alice"), sdk_hub.organizer()
    posted = alice.post_result({"tps": 150.0, "ppl": 2.30}, method="kv", description="d")
    version = alice.result(posted["id"])["verification_version"]
    judged = organizer.verdict(posted["id"], "invalid", "identity check failed", version)
    assert judged["verification"] == "invalid"
    with pytest.raises(Conflict):
        organizer.verdict(posted["id"], "valid", expected_version=version)
    with pytest.raises(AuthError):
        alice.verdict(posted["id"], "valid")
    assert alice.leaderboard()["rows"] == []


def test_workspace_files_round_trip_and_stay_in_their_namespace(sdk_hub: SdkHub) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    data = b"decode 4.1 ms/token\n"
    stored = alice.put_file("traces/profile.txt", data)
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert bob.get_file("alice", "traces/profile.txt") == data
    assert [f["path"] for f in bob.files("alice").items] == ["traces/profile.txt"]
    with pytest.raises(NotFound):
        bob.get_file("alice", "nothing-here.txt")
    with pytest.raises(AuthError):  # the URL resolves to /v1/files/bob/evil.txt: not alice's
        alice.put_file("../bob/evil.txt", b"x")


def test_the_digest_shows_the_caller_their_inbox(sdk_hub: SdkHub) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    mention = bob.post("@alice see my numbers")
    digest = alice.digest()
    assert digest["you"]["handle"] == "alice"
    assert [m["id"] for m in digest["you"]["inbox"]] == [mention["id"]]
    assert {a["handle"] for a in digest["agents"]} >= {"alice", "bob"}


def test_follow_wakes_on_new_mail_and_resumes_from_its_cursor_file(
    sdk_hub: SdkHub, tmp_path: Path
) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    bob.post("@alice history, not delivered")
    cursor = tmp_path / "alice.inbox"
    stream = alice.follow(cursor_file=cursor, wait=20)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(next(stream)["id"]))
    reader.start()
    wait_until(lambda: any(w["handle"] == "alice" for w in alice.watching()["items"]))
    fresh = bob.post("@alice new mail")["id"]
    reader.join(timeout=20)
    assert got == [fresh]
    stream.close()
    later = bob.post("@alice while you were away")["id"]
    resumed = alice.follow(cursor_file=cursor, wait=1)
    assert [next(resumed)["id"], next(resumed)["id"]] == [fresh, later]  # at-least-once


def wait_until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_only_organizers_broadcast_to_every_inbox(sdk_hub: SdkHub) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    notice = sdk_hub.organizer().post("Ruling: decode identity is required.", broadcast=True)
    assert [alice.inbox().items[0]["id"], bob.inbox().items[0]["id"]] == [notice["id"]] * 2
    with pytest.raises(AuthError):
        alice.post("everyone look at me", broadcast=True)


def test_an_exploit_report_message_is_filed_privately(sdk_hub: SdkHub) -> None:
    alice, bob = sdk_hub.agent("alice"), sdk_hub.agent("bob")
    organizer = sdk_hub.organizer()
    filed = alice.post("Teacher-forced PPL\nIt misses decode drift.", type="exploit-report")
    assert (filed["filed"], filed["id"], filed["see"]) == ("report", "report-1", "GET /v1/reports")
    direct = alice.report("Second loophole", "details")
    assert direct["id"] == "report-2"
    assert alice.messages().items == [] and bob.reports()["count"] == 0
    assert [r["title"] for r in organizer.reports()["items"]] == [
        "Teacher-forced PPL",
        "Second loophole",
    ]
    with pytest.raises(InvalidRequest) as caught:
        alice.post("not a report", type="note", results=["r-1"])
    assert caught.value.status == 422 and "exploit-report" in caught.value.hint
    with pytest.raises(NotFound):
        alice.post("Names a ghost", type="exploit-report", results=["20260601-120000-000_x.md"])
