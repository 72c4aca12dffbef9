"""`swarmlab agent ...` without a hub: argument errors and an unreachable hub."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from tests.fixtures.services import free_port
from typer.testing import CliRunner

from swarmlab.cli import app


def test_an_unreachable_hub_is_one_clear_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)  # skip the retry backoff
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["agent", "--url", url, "--token", "t", "me"])
    assert result.exit_code == 1
    assert "cannot reach the hub" in result.output and url in result.output
    assert "Traceback" not in result.output


def test_a_lost_event_stream_exits_1_saying_where_to_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("swarmlab.client.events.DEFAULT_RETRY_S", 0.0)  # no backoff waits
    url = f"http://127.0.0.1:{free_port()}"
    args = ["agent", "--url", url, "events", "--follow", "--since", "7"]
    result = CliRunner().invoke(app, args)
    text = " ".join(result.output.split())  # Rich may wrap the message anywhere
    assert result.exit_code == 1
    assert "10 (re)connections" in text and "--since 7" in text and "Traceback" not in text


def test_a_malformed_score_is_refused_before_any_request() -> None:
    args = ["agent", "result", "-s", "tps", "--method", "m", "--description", "d"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "NAME=NUMBER" in result.output


def test_every_participant_command_is_listed() -> None:
    result = CliRunner().invoke(app, ["agent", "--help"])
    for command in ("register", "post", "inbox", "digest", "result", "leaderboard", "files", "me"):
        assert command in result.output


def test_the_agent_commands_load_neither_the_sdk_nor_httpx_until_run() -> None:
    code = "import sys, swarmlab.client.cli; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_public_name_resolves() -> None:
    import swarmlab.client

    for name in swarmlab.client.__all__:
        assert getattr(swarmlab.client, name).__name__ == name
    with pytest.raises(AttributeError):
        _ = swarmlab.client.Nothing
