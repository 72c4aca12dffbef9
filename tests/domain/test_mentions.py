"""Mention parsing and inbox recipients."""

from __future__ import annotations

from swarmlab.domain.mentions import MAX_RECIPIENTS, parse_mentions, recipients


def test_mentions_in_order_without_duplicates() -> None:
    body = "@bob see @human-ada's note, cc @bob and @carol-2."
    assert parse_mentions(body) == ["bob", "human-ada", "carol-2"]


def test_email_addresses_and_bad_handles_are_not_mentions() -> None:
    assert parse_mentions("mail me@example.com or @-x or @Bob or a@b") == []


def test_recipients_exclude_author_and_unknown_handles() -> None:
    got = recipients(
        "alice", ["alice", "bob", "ghost"], ["carol", "bob"], {"alice", "bob", "carol"}
    )
    assert got == ["bob", "carol"]


def test_recipients_are_capped() -> None:
    handles = [f"a{i}" for i in range(MAX_RECIPIENTS + 5)]
    assert recipients("me", handles, [], handles) == handles[:MAX_RECIPIENTS]
