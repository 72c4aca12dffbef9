"""benchmarks/hub_load.py still runs: a few agents for a few seconds, nothing lost.

A guard against the benchmark rotting as the API moves; it asserts correctness (no errors,
every mention delivered), never a timing.
"""

from __future__ import annotations

import asyncio

import pytest
from benchmarks import hub_load

pytestmark = pytest.mark.slow


def test_the_load_benchmark_runs_against_its_own_hub() -> None:
    args = hub_load.parse_args(
        ["--agents", "3", "--duration", "3", "--interval", "0.5", "--wait", "2", "--grace", "10"]
    )
    result = asyncio.run(hub_load.main_async(args))
    assert result["agents"] == 3
    assert result["errors"] == {}
    assert result["mentions_sent"] > 0 and result["mentions_lost"] == 0
    assert result["operations"]["mention delivery"]["n"] == result["mentions_sent"]
