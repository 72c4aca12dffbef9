"""docs/client.md stays true: every participant command and SDK method is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import typer

from swarmlab.client.cli import agent_app
from swarmlab.client.sdk import Client

DOC = (Path(__file__).resolve().parents[2] / "docs" / "client.md").read_text(encoding="utf-8")
CODE_SPANS = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", DOC, flags=re.DOTALL))


def command_paths() -> list[str]:
    """`post`, `files put`, ...: every command under `swarmlab agent`, groups expanded."""
    paths = []
    for name, command in typer.main.get_command(agent_app).commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        paths += [f"{name} {sub}" for sub in subcommands] if subcommands else [name]
    return paths


@pytest.mark.parametrize("path", command_paths())
def test_every_agent_command_is_in_the_reference(path: str) -> None:
    group, _, sub = path.rpartition(" ")
    assert any(
        span.startswith(group or sub) and re.search(rf"\b{re.escape(sub)}\b", span)
        for span in CODE_SPANS
    ), f"`swarmlab agent {path}` is missing from docs/client.md"


@pytest.mark.parametrize(
    "method",
    [n for n, f in inspect.getmembers(Client, inspect.isfunction) if not n.startswith("_")],
)
def test_every_sdk_method_is_in_the_reference(method: str) -> None:
    assert f"`{method}(" in DOC or f" {method}(" in DOC, f"Client.{method} is undocumented"
