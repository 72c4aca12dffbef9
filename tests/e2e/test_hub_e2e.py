"""End to end: `swarmlab serve` as a real process, three agents and a human on it.

Agents act through the CLI (subprocesses, each with its own credentials file) and the SDK;
the hub runs the real `fast-gemma` pack with its default rate limits. After the session the
hub is stopped with SIGTERM and started again on the same data dir: everything it
acknowledged must still be there.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fixtures.services import free_port

from swarmlab.client import Client, Page

pytestmark = pytest.mark.slow

SWARMLAB = [sys.executable, "-c", "from swarmlab.cli import main; main()"]
READY_S = 60.0


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll `condition` until it holds; fail naming `what` when the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class HubProcess:
    """`swarmlab serve` on a data dir; can be stopped and started again on the same one."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [*SWARMLAB, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        log = (self.data_dir / "hub.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._ready, f"the hub on {self.url} (log: {self.data_dir / 'hub.log'})", READY_S)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.data_dir / "hub.log").read_text(errors="replace")
            pytest.fail(f"the hub exited with {self.proc.returncode}:\n{log}")
        try:
            return httpx.get(f"{self.url}/v1", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("the hub ignored SIGTERM for 30 s")


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[HubProcess]:
    hub = HubProcess(tmp_path / "data")
    hub.data_dir.mkdir()
    hub.start()
    try:
        yield hub
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.proc.kill()
            hub.proc.wait()


@dataclass
class CliAgent:
    """Runs `swarmlab agent ...` as a subprocess with its own credentials file."""

    hub: HubProcess
    home: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMLAB_")}
        env["SWARMLAB_URL"] = self.hub.url
        env["SWARMLAB_CREDENTIALS"] = str(self.home / "credentials.json")
        env["XDG_CONFIG_HOME"] = str(self.home)
        return env

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*SWARMLAB, "agent", *args], capture_output=True, text=True, env=self.env(), timeout=60
        )
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run("--json", *args).stdout)


@contextmanager
def following(agent: CliAgent) -> Iterator[list[str]]:
    """Run `swarmlab agent --json inbox --follow`; collect the ids it prints until killed."""
    cmd = [*SWARMLAB, "agent", "--json", "inbox", "--follow", "--wait", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=agent.env())
    assert proc.stdout is not None
    stdout = proc.stdout
    ids: list[str] = []
    reader = threading.Thread(target=lambda: ids.extend(json.loads(line)["id"] for line in stdout))
    reader.start()
    try:
        yield ids
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        stdout.close()


def cli_agent(hub: HubProcess, tmp_path: Path, agent_id: str) -> CliAgent:
    agent = CliAgent(hub, tmp_path / agent_id)
    agent.run("register", agent_id, "--model", "claude-test", "--harness", "e2e", "--tool", "bash")
    return agent


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    """Make SDK clients that are all closed when the test ends."""
    with ExitStack() as stack:
        yield lambda url, token=None: stack.enter_context(Client(url, token))


def sdk_agent(client: Client, agent_id: str) -> Client:
    client.register(agent_id, model="sdk-test", harness="e2e", save_to=False)
    return client


def has_watched(hub: Client, handle: str) -> bool:
    """Whether `GET /v1/watching` lists a wait-poll by `handle` (recorded as it parks)."""
    return any(row["handle"] == handle for row in hub.watching()["items"])


def inbox_in_background(client: Client, after: str | None) -> tuple[threading.Thread, list[Page]]:
    pages: list[Page] = []
    thread = threading.Thread(
        target=lambda: pages.append(client.inbox(after=after, order="asc", wait=30))
    )
    thread.start()
    return thread, pages


def test_three_agents_and_a_human_collaborate_and_survive_a_restart(
    hub_process: HubProcess, tmp_path: Path, clients: Callable[..., Client]
) -> None:
    hub = hub_process
    token_file = hub.data_dir / "organizer.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    organizer = clients(hub.url, token_file.read_text().strip())
    assert organizer.me()["role"] == "organizer"

    # Identity: one agent through the CLI, two through the SDK, a human by invitation.
    alice = cli_agent(hub, tmp_path, "alice")
    creds = alice.home / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert alice.json("me")["handle"] == "alice"
    bob, carol = sdk_agent(clients(hub.url), "bob"), sdk_agent(clients(hub.url), "carol")
    as_organizer = CliAgent(hub, tmp_path / "organizer")
    invited = as_organizer.json("--token", organizer.token or "", "invite", "ada")
    ada = clients(hub.url, invited["token"])
    assert ada.me()["handle"] == "human-ada"

    taken = alice.run("register", "alice", "--model", "m", "--harness", "h", ok=False)
    assert taken.returncode == 1 and "hint:" in taken.stderr and "Traceback" not in taken.stderr

    # A parked inbox long-poll wakes on a new mention.
    thread, pages = inbox_in_background(carol, carol.inbox(limit=1, order="desc").cursor)
    wait_for(lambda: has_watched(organizer, "carol"), "carol's long-poll to park")
    plan = alice.json(
        "post", "Plan: static KV cache. @carol @human-ada thoughts?", "--type", "plan"
    )
    thread.join(timeout=30)
    assert not thread.is_alive(), "the parked inbox did not wake on the mention"
    (page,) = pages
    assert page.watch_status == "delivered" and [i["id"] for i in page.items] == [plan["id"]]
    assert sorted(plan["mentions_delivered"]) == ["carol", "human-ada"]

    # Replies reach the author of the message they refer to; humans post like agents.
    # `inbox --follow` keeps its cursor: mail that arrives while it is down comes next run.
    with following(alice) as followed:
        wait_for(lambda: has_watched(organizer, "alice"), "alice's inbox --follow to park")
        reply = bob.post("Tried it: +8% on my box.", refs=plan["id"])
        wait_for(lambda: bool(followed), "inbox --follow to print bob's reply")
    assert followed == [reply["id"]]
    missed = bob.post("@alice posted while your watcher was down")
    with following(alice) as again:
        wait_for(lambda: missed["id"] in again, "inbox --follow to catch up after a restart")
    # At-least-once: the reply comes again only if the first follower was stopped between
    # printing it and saving its cursor; nothing else may appear.
    assert again[-1] == missed["id"] and set(again) <= {reply["id"], missed["id"]}
    ada.post("@bob please share the profile", type="note")
    alice_inbox = alice.json("inbox")
    assert reply["id"] in [item["id"] for item in alice_inbox["items"]]
    assert ada.inbox(limit=5, order="desc").items[0]["id"] == plan["id"]

    # Channels: creation is announced, posting subscribes, notify=all feeds `updates`.
    alice.run("channel", "create", "kv-cache", "--theme", "KV cache layouts")
    carol.subscribe("kv-cache", notify="all")
    in_channel = alice.json("post", "int8 KV: ppl 2.33", "--channel", "kv-cache")
    updates = carol.updates(limit=10, order="desc")
    assert in_channel["id"] in [item["id"] for item in updates.items]
    assert in_channel["id"] in [i["id"] for i in carol.channel_messages("kv-cache").items]

    # Results, lineage and the leaderboard (fast-gemma ranks tps, higher is better).
    first = alice.json(
        "result", "-s", "tps=150", "-s", "ppl=2.30", "--method", "static-kv",
        "--description", "static KV cache",
    )  # fmt: skip
    second = bob.post_result(
        {"tps": 180.0, "ppl": 2.31},
        method="static-kv+graphs",
        description="CUDA graphs on top of alice's cache",
        builds_on=[first["id"]],
    )
    board = alice.json("leaderboard")
    assert [row["agent"] for row in board["rows"]] == ["bob", "alice"]
    assert board["rows"][0]["result_id"] == second["id"]

    # Files: put through the CLI, read back through the SDK, byte for byte.
    profile = tmp_path / "profile.txt"
    profile.write_bytes(b"decode 4.1 ms/token\n" * 100)
    stored = alice.json("files", "put", str(profile), "traces/profile.txt")
    assert stored["sha256"] == hashlib.sha256(profile.read_bytes()).hexdigest()
    assert carol.get_file("alice", "traces/profile.txt") == profile.read_bytes()

    digest = carol.digest()
    assert digest["leaderboard"]["rows"][0]["agent"] == "bob"

    # Restart: SIGTERM with a watcher parked (it is answered at once, the hub exits), start
    # again on the same data dir, nothing acknowledged is lost.
    acknowledged = [plan["id"], reply["id"], in_channel["id"]]
    dave = sdk_agent(clients(hub.url), "dave")
    parked, parked_pages = inbox_in_background(dave, None)
    wait_for(lambda: has_watched(organizer, "dave"), "dave's long-poll to park")
    hub.stop()
    parked.join(timeout=10)
    assert not parked.is_alive() and parked_pages[0].watch_status == "timeout"
    hub.start()
    assert token_file.read_text().strip() == organizer.token  # no second organizer
    reader = clients(hub.url)
    for message_id in acknowledged:
        assert reader.message(message_id)["id"] == message_id
    assert [row["result_id"] for row in reader.leaderboard()["rows"]] == [
        second["id"],
        first["id"],
    ]
    assert reader.get_file("alice", "traces/profile.txt") == profile.read_bytes()
    assert alice.json("me")["handle"] == "alice"  # tokens survive too
    assert clients(hub.url, ada.token).me()["handle"] == "human-ada"
