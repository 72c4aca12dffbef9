"""The harness's input files: prompt sets and the PPL ground truth, validated on load.

Prompt sets are JSON Lines of `{id, prompt, category}`; the ground truth is JSON Lines of
`{id, context_token_ids, target_token_ids}`. A bad row raises InputError naming file and line.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmlab.bench.artifacts import read_jsonl
from swarmlab.bench.errors import InputError

DECODE_SHUFFLE_SEED = 1


@dataclass(frozen=True)
class Prompt:
    """One benchmark prompt."""

    id: str
    prompt: str
    category: str = ""


@dataclass(frozen=True)
class PplRecord:
    """One ground-truth record: a context and the target span scored after it."""

    id: str
    context_token_ids: tuple[int, ...]
    target_token_ids: tuple[int, ...]


def load_prompts(path: Path) -> list[Prompt]:
    """Read a prompt set; ids must be unique and prompts non-empty."""
    prompts = []
    for number, row in enumerate(read_jsonl(path), start=1):
        text = row.get("prompt")
        if "id" not in row or not isinstance(text, str) or not text.strip():
            raise InputError(f"{path}:{number}: each row needs an `id` and a non-empty `prompt`")
        prompts.append(Prompt(str(row["id"]), text, str(row.get("category", ""))))
    _unique(path, [p.id for p in prompts])
    if not prompts:
        raise InputError(f"{path} holds no prompts")
    return prompts


def load_ppl_records(path: Path) -> list[PplRecord]:
    """Read the PPL ground truth; every target span must be non-empty."""
    records = []
    for number, row in enumerate(read_jsonl(path), start=1):
        where = f"{path}:{number}"
        if "id" not in row:
            raise InputError(f"{where}: row has no `id`")
        context = _ids(row, "context_token_ids", where)
        target = _ids(row, "target_token_ids", where)
        if not context or not target:
            raise InputError(f"{where}: context and target must both hold tokens")
        records.append(PplRecord(str(row["id"]), context, target))
    _unique(path, [r.id for r in records])
    if not records:
        raise InputError(f"{path} holds no records")
    return records


def decode_order(prompts: Sequence[Prompt], seed: int = DECODE_SHUFFLE_SEED) -> list[Prompt]:
    """The decode-capture order: the prompt set shuffled with a fixed seed (1 by default)."""
    order = list(prompts)
    random.Random(seed).shuffle(order)
    return order


def cycle(items: Sequence[Any], count: int) -> list[Any]:
    """`count` items, repeating the sequence when it is shorter."""
    return [items[i % len(items)] for i in range(count)]


def _ids(row: dict[str, Any], name: str, where: str) -> tuple[int, ...]:
    value = row.get(name)
    if not isinstance(value, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value
    ):
        raise InputError(f"{where}: `{name}` must be a list of token ids (non-negative integers)")
    return tuple(value)


def _unique(path: Path, ids: list[str]) -> None:
    seen: set[str] = set()
    for key in ids:
        if key in seen:
            raise InputError(f"{path}: id {key!r} appears twice; ids must be unique")
        seen.add(key)
