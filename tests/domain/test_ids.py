"""Handles and record ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from swarmlab.domain import ids


@pytest.mark.parametrize("handle", ["a", "fast-gemma-7", "x" * 40, "a1-b2"])
def test_valid_agent_ids(handle: str) -> None:
    assert ids.check_agent_id(handle) == handle


@pytest.mark.parametrize("handle", ["", "-a", "a-", "A", "a_b", "a.b", "x" * 41, "é"])
def test_malformed_handles_are_refused_with_the_rule(handle: str) -> None:
    with pytest.raises(ids.InvalidHandle, match="1-40 characters"):
        ids.check_agent_id(handle)


@pytest.mark.parametrize("handle", ["system", "verifier", "organizer", "human-ada"])
def test_reserved_ids_cannot_be_registered(handle: str) -> None:
    with pytest.raises(ids.InvalidHandle, match="reserved"):
        ids.check_agent_id(handle)


def test_human_handles_get_the_prefix_once() -> None:
    assert ids.human_handle("ada") == "human-ada"
    assert ids.human_handle("human-ada") == "human-ada"
    assert ids.is_human("human-ada") and not ids.is_human("ada")
    with pytest.raises(ids.InvalidHandle):
        ids.human_handle("human-")


def test_record_id_has_the_filename_form_and_round_trips() -> None:
    moment = datetime(2026, 6, 3, 14, 5, 9, 7000, tzinfo=UTC)
    stamp = int(moment.timestamp() * 1000)
    record = ids.record_id(stamp, "alice")
    assert record == "20260603-140509-007_alice.md"
    assert ids.parse_record_id(record) == (moment, "alice")
    with pytest.raises(ValueError, match="not a record id"):
        ids.parse_record_id("20260603-140509_alice.md")


def test_stamps_strictly_increase_even_within_one_millisecond() -> None:
    assert ids.next_stamp_ms(1000, None) == 1000
    assert ids.next_stamp_ms(1000, 999) == 1000
    assert ids.next_stamp_ms(1000, 1000) == 1001
    assert ids.next_stamp_ms(990, 1005) == 1006  # clock stepped back: never reuse a stamp


def test_ids_of_increasing_stamps_sort_in_time_order_across_authors() -> None:
    last = None
    issued = []
    for author in ["zed", "amy", "zed", "bob"]:
        last = ids.next_stamp_ms(1_780_000_000_000, last)
        issued.append(ids.record_id(last, author))
    assert issued == sorted(issued)
    assert len(set(issued)) == len(issued)
