"""`swarmlab serve`: migrations, the organizer token shown once, settings from flags."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from swarmlab.api.serve import HubServer
from swarmlab.cli import app as cli


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what the server would run instead of listening (uvicorn is not ours to test)."""
    calls: list[dict[str, Any]] = []

    def fake_run(server: HubServer, sockets: object = None) -> None:
        app: FastAPI = server.config.app
        calls.append({"app": app, "host": server.config.host, "port": server.config.port})
        app.state.hub.db.dispose()

    monkeypatch.setattr(HubServer, "run", fake_run)
    return calls


def test_first_start_creates_the_organizer_token_once(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    args = ["serve", "--data-dir", str(tmp_path), "--port", "8123", "--host", "127.0.0.2"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    token_file = tmp_path / "organizer.token"
    token = token_file.read_text().strip()
    assert token.startswith("swl_") and token in first.output.replace("\n", "")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert (tmp_path / "hub.db").is_file()
    assert started[0]["port"] == 8123 and started[0]["host"] == "127.0.0.2"

    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0
    assert token not in second.output.replace("\n", "")
    assert token_file.read_text().strip() == token


def test_unknown_challenge_exits_with_the_fix(tmp_path: Path, started: list[Any]) -> None:
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path), "--challenge", "nope"])
    assert result.exit_code == 2
    assert "no challenge pack 'nope'" in result.output
    assert started == []
