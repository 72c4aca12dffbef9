"""docs/harness.md stays true: every command, run file, summary field and error is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from swarmlab.bench import errors
from swarmlab.bench.cli import app
from swarmlab.bench.speed import speed_metrics

DOC = (Path(__file__).resolve().parents[2] / "docs" / "harness.md").read_text(encoding="utf-8")


def test_every_command_is_documented() -> None:
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        assert f"swarmlab bench {name}" in DOC, name


@pytest.mark.parametrize(
    "name",
    [
        "status.json",
        "server.log",
        "run_request.json",
        "run_environment.json",
        "server.json",
        "benchmark.jsonl",
        "decode_outputs.jsonl",
        "decode_summary.json",
        "ppl_results.jsonl",
        "ppl_summary.json",
        "identity.json",
        "summary.json",
    ],
)
def test_every_run_file_is_documented(name: str) -> None:
    assert f"| `{name}` |" in DOC


def test_every_speed_field_is_documented() -> None:
    rows = [{"latency_s": 1.0, "completion_tokens": 1, "prompt_tokens": 1}]
    for field in speed_metrics(rows, 1.0, 1, 0):
        assert f"`{field}`" in DOC, field


def test_every_error_type_is_documented() -> None:
    for name, kind in inspect.getmembers(errors, inspect.isclass):
        if issubclass(kind, errors.BenchError) and kind is not errors.BenchError:
            assert f"`{name}`" in DOC, name
