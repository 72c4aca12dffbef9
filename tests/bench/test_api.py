"""The public API the job runner uses is importable from `swarmlab.bench`, and only that."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import swarmlab.bench as bench


def test_every_export_resolves() -> None:
    for name in bench.__all__:
        assert getattr(bench, name).__name__ == name


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = bench.nope  # type: ignore[attr-defined]


def test_importing_the_package_is_light() -> None:
    code = "import sys, swarmlab.bench; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert sorted(bench.__all__) == sorted(bench._EXPORTS)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"stages": frozenset({"speed", "warp"})}, "subset"),
        ({"stages": frozenset()}, "non-empty"),
        ({"stages": frozenset({"speed"}), "reference_decode": Path("r.jsonl")}, "decode stage"),
    ],
)
def test_run_config_rejects_impossible_stage_sets(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        bench.RunConfig(submission=Path(), state_dir=Path(), prompts=Path(), **changes)
