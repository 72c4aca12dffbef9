"""The greedy-identity checker: exact token equality by id, integrity checks, three verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from swarmlab.bench.artifacts import token_sha256
from swarmlab.bench.identity import IdentityVerdict, check_identity, divergence


def row(key: str, completion: list[int], prompt: tuple[int, ...] = (1, 2, 3)) -> dict[str, Any]:
    return {
        "id": key,
        "prompt_token_ids": list(prompt),
        "prompt_token_sha256": token_sha256(prompt),
        "completion_token_ids": completion,
        "completion_token_sha256": token_sha256(completion),
    }


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


REFERENCE = [row("a", [5, 6, 7, 8]), row("b", [9, 9, 9])]


def test_token_hash_is_sha256_of_comma_joined_ids() -> None:
    # sha256(b"1,2,3") computed independently with `printf 1,2,3 | sha256sum`
    assert token_sha256([1, 2, 3]) == (
        "8a6ae15122001229edb8866f56e342af12ae8187203c3e3b33931743e7c0c48d"
    )
    assert token_sha256([]) == token_sha256(())


def test_identical(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref.jsonl", REFERENCE)
    cand = write(tmp_path / "cand.jsonl", list(reversed(REFERENCE)))
    report = check_identity(ref, cand)
    assert report.verdict is IdentityVerdict.identical
    assert report.verdict.exit_code == 0
    assert report.compared == 2


def test_divergent_reports_first_index_and_count(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref.jsonl", REFERENCE)
    cand = write(tmp_path / "cand.jsonl", [row("a", [5, 6, 0, 8]), row("b", [9, 9, 9])])
    report = check_identity(ref, cand)
    assert report.verdict is IdentityVerdict.divergent
    assert report.verdict.exit_code == 1
    [found] = report.divergences
    assert (found.id, found.first_divergence, found.divergent_tokens) == ("a", 2, 1)
    assert report.to_json()["divergent_tokens"] == 1


def test_length_mismatch_is_divergent() -> None:
    found = divergence("x", [1, 2, 3, 4], [1, 2])
    assert found is not None
    assert (found.first_divergence, found.divergent_tokens) == (2, 2)
    assert (found.reference_tokens, found.candidate_tokens) == (4, 2)
    assert divergence("x", [1, 2], [1, 2]) is None


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        ([row("a", [5, 6, 7, 8])], "missing from the candidate: b"),
        ([*REFERENCE, row("c", [1])], "not in the reference: c"),
        ([row("a", [5, 6, 7, 8], prompt=(4, 4)), row("b", [9, 9, 9])], "prompt tokens differ"),
        (
            [{**row("a", [5, 6, 7, 8]), "completion_token_sha256": "0" * 64}, REFERENCE[1]],
            "integrity",
        ),
        ([{**row("a", [5, 6, 7, 8]), "prompt_token_sha256": "0" * 64}, REFERENCE[1]], "integrity"),
        ([*REFERENCE, REFERENCE[0]], "appears twice"),
        ([{"id": "a", "completion_token_ids": ["5"]}], "integer token ids"),
        ([{"id": "a"}], "no `completion_token_ids`"),
        ([{"completion_token_ids": [1]}], "no `id`"),
    ],
)
def test_incomparable(tmp_path: Path, candidate: list[dict[str, Any]], words: str) -> None:
    ref = write(tmp_path / "ref.jsonl", REFERENCE)
    report = check_identity(ref, write(tmp_path / "cand.jsonl", candidate))
    assert report.verdict is IdentityVerdict.incomparable
    assert report.verdict.exit_code == 2
    assert any(words in p for p in report.problems), report.problems


def test_unparsable_or_missing_file_is_incomparable(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref.jsonl", REFERENCE)
    broken = tmp_path / "cand.jsonl"
    broken.write_text('{"id": "a"\n', encoding="utf-8")
    assert check_identity(ref, broken).verdict is IdentityVerdict.incomparable
    missing = check_identity(ref, tmp_path / "nope.jsonl")
    assert missing.verdict is IdentityVerdict.incomparable
    assert "cannot read" in missing.problems[0]


def test_two_empty_files_are_incomparable(tmp_path: Path) -> None:
    empty = write(tmp_path / "e.jsonl", [])
    assert check_identity(empty, empty).verdict is IdentityVerdict.incomparable
