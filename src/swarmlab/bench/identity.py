"""Greedy identity: is a candidate's greedy decode token-identical to the reference's?

Compares two `decode_outputs.jsonl` files keyed by `id`, by exact equality of
`completion_token_ids` (no tolerance), as the community checker of the Fast Gemma challenge
did. Stored token hashes are recomputed first: a row whose hash does not match its ids makes
the comparison INCOMPARABLE, as do different id sets, duplicate ids, unparsable rows and rows
whose prompt tokens differ (then the two runs did not decode the same inputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from swarmlab.bench.artifacts import read_jsonl, token_sha256
from swarmlab.bench.errors import InputError


class IdentityVerdict(StrEnum):
    """The checker's answer; `exit_code` is the CLI's exit status for it."""

    identical = "IDENTICAL"
    divergent = "DIVERGENT"
    incomparable = "INCOMPARABLE"

    @property
    def exit_code(self) -> int:
        """0 identical, 1 divergent, 2 incomparable."""
        return {"IDENTICAL": 0, "DIVERGENT": 1, "INCOMPARABLE": 2}[self.value]


@dataclass(frozen=True)
class DecodeRow:
    """The parts of one decode_outputs.jsonl row the checker needs."""

    id: str
    completion_token_ids: tuple[int, ...]
    prompt_token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PromptDivergence:
    """Where one prompt's candidate decode first leaves the reference, and by how much."""

    id: str
    first_divergence: int
    divergent_tokens: int
    reference_tokens: int
    candidate_tokens: int


@dataclass(frozen=True)
class IdentityReport:
    """The verdict with its evidence: divergent prompts, or why the runs are incomparable."""

    verdict: IdentityVerdict
    compared: int = 0
    divergences: list[PromptDivergence] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what summary.json and `bench identity --json` carry)."""
        return {
            "verdict": self.verdict.value,
            "compared": self.compared,
            "divergent_prompts": len(self.divergences),
            "divergent_tokens": sum(d.divergent_tokens for d in self.divergences),
            "divergences": [asdict(d) for d in self.divergences],
            "problems": self.problems,
        }


def check_identity(reference: Path, candidate: Path) -> IdentityReport:
    """Compare two decode_outputs.jsonl files; never raises for bad content (-> INCOMPARABLE)."""
    try:
        ref_rows = load_decode_rows(reference)
        cand_rows = load_decode_rows(candidate)
    except InputError as exc:
        return IdentityReport(IdentityVerdict.incomparable, problems=[str(exc)])
    return compare_decodes(ref_rows, cand_rows)


def compare_decodes(
    reference: Mapping[str, DecodeRow], candidate: Mapping[str, DecodeRow]
) -> IdentityReport:
    """The verdict for two id-keyed decode sets."""
    problems = _key_problems(reference.keys(), candidate.keys())
    problems += [
        f"{key}: prompt tokens differ, so the runs decoded different inputs"
        for key in sorted(reference.keys() & candidate.keys())
        if _prompts_differ(reference[key], candidate[key])
    ]
    if problems:
        return IdentityReport(IdentityVerdict.incomparable, problems=problems)
    divergences = [
        found
        for key in sorted(reference)
        if (
            found := divergence(
                key, reference[key].completion_token_ids, candidate[key].completion_token_ids
            )
        )
    ]
    verdict = IdentityVerdict.divergent if divergences else IdentityVerdict.identical
    return IdentityReport(verdict, compared=len(reference), divergences=divergences)


def divergence(key: str, ref: Sequence[int], cand: Sequence[int]) -> PromptDivergence | None:
    """None when equal, else the first differing index and the count of differing positions."""
    if list(ref) == list(cand):
        return None
    longest = max(len(ref), len(cand))
    differs = [i for i in range(longest) if i >= len(ref) or i >= len(cand) or ref[i] != cand[i]]
    return PromptDivergence(key, differs[0], len(differs), len(ref), len(cand))


def load_decode_rows(path: Path) -> dict[str, DecodeRow]:
    """Parse and integrity-check a decode_outputs.jsonl; InputError on anything unusable."""
    rows: dict[str, DecodeRow] = {}
    for number, raw in enumerate(read_jsonl(path), start=1):
        row = _parse_row(raw, f"{path}:{number}")
        if row.id in rows:
            raise InputError(f"{path}:{number}: id {row.id!r} appears twice")
        rows[row.id] = row
    return rows


def _parse_row(raw: dict[str, Any], where: str) -> DecodeRow:
    if "id" not in raw:
        raise InputError(f"{where}: row has no `id`")
    completion = _token_list(raw, "completion_token_ids", where)
    if completion is None:
        raise InputError(f"{where}: row has no `completion_token_ids`")
    prompt = _token_list(raw, "prompt_token_ids", where)
    _check_hash(raw, "completion_token_sha256", completion, where)
    _check_hash(raw, "prompt_token_sha256", prompt, where)
    return DecodeRow(str(raw["id"]), completion, prompt)


def _token_list(raw: dict[str, Any], name: str, where: str) -> tuple[int, ...] | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    ):
        raise InputError(f"{where}: `{name}` must be a list of integer token ids")
    return tuple(value)


def _check_hash(raw: dict[str, Any], name: str, ids: Sequence[int] | None, where: str) -> None:
    stored = raw.get(name)
    if stored is not None and ids is not None and stored != token_sha256(ids):
        raise InputError(f"{where}: `{name}` does not match the token ids (integrity failure)")


def _key_problems(ref: Iterable[str], cand: Iterable[str]) -> list[str]:
    ref_keys, cand_keys = set(ref), set(cand)
    problems = []
    if missing := sorted(ref_keys - cand_keys):
        problems.append(f"ids missing from the candidate: {', '.join(missing[:10])}")
    if extra := sorted(cand_keys - ref_keys):
        problems.append(f"ids not in the reference: {', '.join(extra[:10])}")
    if not ref_keys and not cand_keys:
        problems.append("both files are empty: nothing to compare")
    return problems


def _prompts_differ(ref: DecodeRow, cand: DecodeRow) -> bool:
    return (
        ref.prompt_token_ids is not None
        and cand.prompt_token_ids is not None
        and ref.prompt_token_ids != cand.prompt_token_ids
    )
