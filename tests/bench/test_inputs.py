"""Input files: the pack's prompt sets and ground-truth records load, bad rows are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmlab.bench.errors import InputError
from swarmlab.bench.inputs import cycle, decode_order, load_ppl_records, load_prompts

PROMPTS = Path(__file__).resolve().parents[2] / "challenges" / "fast-gemma" / "prompts"


def test_pack_prompt_sets_are_original_balanced_and_disjoint() -> None:
    public = load_prompts(PROMPTS / "public.jsonl")
    private = load_prompts(PROMPTS / "private.jsonl")
    assert len(public) == 128
    assert len(private) == 32
    for category in ("maths", "science", "code", "reasoning"):
        assert sum(p.category == category for p in public) == 32
    assert not {p.prompt for p in public} & {p.prompt for p in private}
    assert not {p.id for p in public} & {p.id for p in private}


def test_decode_order_is_a_fixed_shuffle() -> None:
    public = load_prompts(PROMPTS / "public.jsonl")
    order = decode_order(public)
    assert order == decode_order(public)
    assert order != public
    assert sorted(p.id for p in order) == sorted(p.id for p in public)


def test_cycle_repeats_short_sets() -> None:
    assert cycle(["a", "b"], 5) == ["a", "b", "a", "b", "a"]


def write(tmp_path: Path, rows: list[object]) -> Path:
    path = tmp_path / "f.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}], "appears twice"),
        ([{"id": "a", "prompt": "  "}], "non-empty `prompt`"),
        ([], "holds no prompts"),
        (["text"], ":1 must be a JSON object"),
    ],
)
def test_bad_prompt_files(tmp_path: Path, rows: list[object], words: str) -> None:
    with pytest.raises(InputError, match=words):
        load_prompts(write(tmp_path, rows))


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"id": "r", "context_token_ids": [1], "target_token_ids": []}, "both hold tokens"),
        ({"id": "r", "context_token_ids": [1], "target_token_ids": [-4]}, "non-negative"),
        ({"id": "r", "context_token_ids": "1,2", "target_token_ids": [3]}, "context_token_ids"),
        ({"context_token_ids": [1], "target_token_ids": [3]}, "no `id`"),
    ],
)
def test_bad_ppl_records(tmp_path: Path, row: dict[str, object], words: str) -> None:
    with pytest.raises(InputError, match=words):
        load_ppl_records(write(tmp_path, [row]))


def test_ppl_records_load(tmp_path: Path) -> None:
    [record] = load_ppl_records(
        write(tmp_path, [{"id": 7, "context_token_ids": [1, 2], "target_token_ids": [3]}])
    )
    assert (record.id, record.context_token_ids, record.target_token_ids) == ("7", (1, 2), (3,))
