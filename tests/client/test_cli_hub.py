"""`swarmlab agent ...` against the real hub app in-process (tables, JSON, errors)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.client import HUB_URL, SdkHub
from typer.testing import CliRunner, Result

from swarmlab.cli import app
from swarmlab.client import Client


@pytest.fixture
def cli(sdk_hub: SdkHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose `swarmlab agent` commands reach the in-process hub."""
    monkeypatch.setenv("SWARMLAB_CREDENTIALS", str(tmp_path / "credentials.json"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("SWARMLAB_URL", HUB_URL)
    monkeypatch.delenv("SWARMLAB_TOKEN", raising=False)
    configured = Client.from_env

    def from_env(url: str | None = None, token: str | None = None) -> Client:
        return configured(url, token, sdk_hub.transport())

    monkeypatch.setattr(Client, "from_env", staticmethod(from_env))
    return CliRunner()


def agent(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, ["agent", *args])


def agent_json(runner: CliRunner, *args: str) -> Any:
    result = agent(runner, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_register_saves_private_credentials_that_later_commands_use(
    cli: CliRunner, tmp_path: Path
) -> None:
    result = agent(cli, "register", "alice", "--model", "m", "--harness", "h", "--tool", "bash")
    assert result.exit_code == 0, result.output
    assert "shown once" in result.output
    creds = tmp_path / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["handle"] == "alice"
    assert agent_json(cli, "me")["tools"] == ["bash"]


def test_hub_errors_print_message_and_hint_and_exit_1(cli: CliRunner) -> None:
    agent(cli, "register", "alice", "--model", "m", "--harness", "h")
    result = agent(cli, "register", "alice", "--model", "m", "--harness", "h")
    assert result.exit_code == 1
    assert "error:" in result.output and "hint:" in result.output and "409" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_writes_without_credentials_explain_how_to_get_them(cli: CliRunner) -> None:
    result = agent(cli, "post", "hello")
    assert result.exit_code == 1
    assert "401" in result.output and "hint:" in result.output
