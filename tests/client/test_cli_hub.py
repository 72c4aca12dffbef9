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
def hub_db_url(tmp_path: Path) -> str:
    """SQLite only: the commands are thin over the SDK, whose tests cover both databases."""
    return f"sqlite:///{tmp_path / 'hub.db'}"


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


def register(runner: CliRunner, agent_id: str) -> None:
    result = agent(runner, "register", agent_id, "--model", "m", "--harness", "h")
    assert result.exit_code == 0, result.output


def test_posts_reach_the_mentioned_inbox_shown_as_a_table(cli: CliRunner, sdk_hub: SdkHub) -> None:
    bob = sdk_hub.agent("bob")
    register(cli, "alice")
    posted = agent_json(cli, "post", "Plan: static KV. @bob thoughts?", "--type", "plan")
    assert posted["mentions_delivered"] == ["bob"]
    bob.post("Looks right.", refs=posted["id"])
    table = agent(cli, "inbox")
    assert table.exit_code == 0 and "Looks right." in table.output and "bob" in table.output
    board = agent(cli, "messages", "--q", "static KV")
    assert "Plan: static KV." in board.output and "plan" in board.output


def test_an_exploit_report_posted_through_the_cli_is_filed_not_posted(
    cli: CliRunner, sdk_hub: SdkHub
) -> None:
    register(cli, "alice")
    filed = agent(cli, "post", "Teacher-forced PPL\nIt misses drift.", "--type", "exploit-report")
    assert filed.exit_code == 0, filed.output
    assert "filed report-1, not posted on the board" in filed.output
    assert "GET /v1/reports" in filed.output
    assert agent_json(cli, "messages")["items"] == []
    mine = agent(cli, "reports")
    assert mine.exit_code == 0 and "Teacher-forced PPL" in mine.output and "open" in mine.output
    organizer = sdk_hub.organizer()
    assert [r["author"] for r in organizer.reports()["items"]] == ["alice"]


def test_results_leaderboard_and_digest_render(cli: CliRunner, sdk_hub: SdkHub) -> None:
    register(cli, "alice")
    args = ["-s", "tps=150", "-s", "ppl=2.3", "--method", "static-kv", "--description", "d"]
    posted = agent_json(cli, "result", *args)
    assert (posted["tps"], posted["status"]) == (150, "agent-run")
    board = agent(cli, "leaderboard")
    assert board.exit_code == 0 and "static-kv" in board.output and "alice" in board.output
    assert "tps" in agent(cli, "results").output
    digest = agent(cli, "digest")
    assert (
        digest.exit_code == 0
        and "Leaderboard" in digest.output
        and "Inbox of alice" in digest.output
    )
    withdrawn = agent_json(cli, "withdraw", posted["id"], "--reason", "measured wrong")
    assert withdrawn["withdrawn"] is True
    assert "withdrawn" in agent(cli, "results").output


def test_files_round_trip_through_the_cli(cli: CliRunner, tmp_path: Path) -> None:
    register(cli, "alice")
    local = tmp_path / "notes.md"
    local.write_text("# findings\n")
    stored = agent_json(cli, "files", "put", str(local), "docs/notes.md")
    assert stored["path"] == "docs/notes.md"
    out = tmp_path / "copy.md"
    fetched = agent(cli, "files", "get", "alice", "docs/notes.md", "-o", str(out))
    assert fetched.exit_code == 0 and out.read_text() == "# findings\n"
    missing = agent(cli, "files", "get", "alice", "nope.md")
    assert missing.exit_code == 1 and "404" in missing.output


def test_channels_through_the_cli(cli: CliRunner, sdk_hub: SdkHub) -> None:
    register(cli, "alice")
    assert agent(cli, "channel", "create", "kv-cache", "--theme", "KV layouts").exit_code == 0
    assert agent_json(cli, "channel", "join", "kv-cache", "--notify", "all")["notify"] == "all"
    sdk_hub.agent("bob").post("int8 KV: ppl 2.33", channel="kv-cache")
    assert "int8 KV" in agent(cli, "channel", "read", "kv-cache").output
    assert "int8 KV" in agent(cli, "inbox", "--updates").output
    assert "KV layouts" in agent(cli, "channel", "list").output
    assert agent_json(cli, "channel", "leave", "kv-cache")["subscribed"] is False
    refused = agent(cli, "channel", "join", "kv-cache", "--notify", "loud")
    assert refused.exit_code == 2


def test_organizers_invite_and_judge_through_the_cli(cli: CliRunner, sdk_hub: SdkHub) -> None:
    organizer = ["--token", sdk_hub.organizer_token]
    invited = agent_json(cli, *organizer, "invite", "ada")
    assert invited["handle"] == "human-ada" and invited["token"]
    posted = sdk_hub.agent("bob").post_result({"tps": 1.0, "ppl": 2.0}, method="m", description="d")
    judged = agent_json(cli, *organizer, "verdict", posted["id"], "invalid", "--note", "no")
    assert judged["verification"] == "invalid"
    refused = agent(cli, "verdict", posted["id"], "valid")
    assert refused.exit_code == 1 and "401" in refused.output


def test_message_text_is_shown_verbatim_never_as_markup(cli: CliRunner, sdk_hub: SdkHub) -> None:
    register(cli, "alice")
    sdk_hub.agent("bob").post("@alice [bold]not bold[/] and [/oops]")
    table = agent(cli, "inbox")
    assert table.exit_code == 0
    assert "[bold]" in table.output and "[/oops]" in table.output  # the cell may wrap


def test_watching_lists_handles_that_long_polled(cli: CliRunner, sdk_hub: SdkHub) -> None:
    bob = sdk_hub.agent("bob")
    assert agent_json(cli, "watching")["items"] == []
    bob.inbox(wait=0.01)
    (row,) = agent_json(cli, "watching")["items"]
    assert (row["handle"], row["stream"]) == ("bob", "inbox")
    assert "bob" in agent(cli, "watching").output


def test_events_replays_the_record_in_order_with_since_kind_and_json(
    cli: CliRunner, sdk_hub: SdkHub
) -> None:
    bob = sdk_hub.agent("bob")
    first, second = (bob.post(f"note {i}")["id"] for i in range(2))
    result = bob.post_result({"tps": 100, "ppl": 2.3}, method="m", description="d")
    lines = agent(cli, "events").output.splitlines()
    assert [line.split()[2:4] for line in lines] == [
        ["message", first],
        ["message", second],
        ["result", result["id"]],
    ]
    assert "author=bob" in lines[0]
    since = int(lines[0].split()[0])
    replayed = agent(cli, "events", "--since", str(since), "--kind", "message", "--json")
    assert [json.loads(line)["ref"] for line in replayed.output.splitlines()] == [second]
