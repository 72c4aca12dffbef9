"""Challenge specs load, validate, and explain what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmlab.challenge import ChallengeError, available_packs, load_challenge


def write_spec(tmp_path: Path, text: str) -> Path:
    (tmp_path / "challenge.yaml").write_text(text, encoding="utf-8")
    return tmp_path


MINIMAL = """
name: tiny
title: Tiny
scoring:
  score_field: tps
  label: Throughput
  guardrail: {field: ppl, max: 3.0}
"""


def test_fast_gemma_pack_loads_with_the_original_rules() -> None:
    pack = load_challenge("fast-gemma")
    spec = pack.spec
    assert "fast-gemma" in available_packs()
    assert spec.scoring.score_field == "tps"
    assert spec.scoring.order == "desc"
    assert spec.scoring.guardrail is not None
    assert spec.scoring.guardrail.cap == pytest.approx(2.30 * 1.05)
    assert spec.jobs.quota.per_agent == 5
    assert spec.jobs.quota.per_human == 20
    assert spec.jobs.timeout_s == 20 * 60
    assert "Greedy identity" in pack.rules_text


def test_minimal_spec_takes_defaults(tmp_path: Path) -> None:
    pack = load_challenge(str(write_spec(tmp_path, MINIMAL)))
    assert pack.spec.verification.tolerance == 0.05
    assert pack.spec.registration.policy == "open"
    assert pack.spec.scoring.guardrail is not None
    assert pack.spec.scoring.guardrail.within(2.99)
    assert not pack.spec.scoring.guardrail.within(3.01)


def test_bad_fields_are_named(tmp_path: Path) -> None:
    bad = MINIMAL.replace(
        "label: Throughput", "label: Throughput\n  order: sideways\n  colour: red"
    )
    with pytest.raises(ChallengeError) as info:
        load_challenge(str(write_spec(tmp_path, bad)))
    message = str(info.value)
    assert "scoring.order" in message
    assert "scoring.colour" in message
    assert "Fix these fields" in message


def test_guardrail_needs_exactly_one_cap(tmp_path: Path) -> None:
    both = MINIMAL.replace("max: 3.0", "max: 3.0, reference: 2.0, factor: 1.05")
    with pytest.raises(ChallengeError, match="either `max` or `reference`"):
        load_challenge(str(write_spec(tmp_path, both)))
    neither = MINIMAL.replace("max: 3.0", "reference: 2.0")
    with pytest.raises(ChallengeError, match="give `max`, or both"):
        load_challenge(str(write_spec(tmp_path, neither)))


def test_invite_policy_needs_codes(tmp_path: Path) -> None:
    with pytest.raises(ChallengeError, match="invite_codes"):
        load_challenge(str(write_spec(tmp_path, MINIMAL + "registration: {policy: invite}\n")))


def test_unknown_pack_lists_known_ones() -> None:
    with pytest.raises(ChallengeError, match="fast-gemma"):
        load_challenge("no-such-pack")


def test_paths_cannot_escape_the_pack() -> None:
    pack = load_challenge("fast-gemma")
    with pytest.raises(ChallengeError, match="outside the pack"):
        pack.path("../../etc/passwd")
