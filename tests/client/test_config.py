"""Where the SDK finds its hub and token, and how it stores credentials."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from swarmlab.client import Client, ConfigError
from swarmlab.client.config import (
    Credentials,
    cursor_path,
    load_credentials,
    resolve,
    save_credentials,
)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the developer's real credentials or environment."""
    for name in ("SWARMLAB_URL", "SWARMLAB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / "creds.json"
    monkeypatch.setenv("SWARMLAB_CREDENTIALS", str(path))
    return path


def test_saved_credentials_are_private_and_round_trip(isolated_config: Path) -> None:
    creds = Credentials(url="http://hub:9000", handle="alice", token="secret")
    assert save_credentials(creds) == isolated_config
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o600
    assert load_credentials() == creds


def test_the_default_credentials_file_lives_in_the_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARMLAB_CREDENTIALS")
    save_credentials(Credentials("http://h", "bob", "t"))
    assert (tmp_path / "config" / "swarmlab" / "credentials.json").is_file()


def test_environment_beats_the_credentials_file(monkeypatch: pytest.MonkeyPatch) -> None:
    save_credentials(Credentials("http://hub:9000", "alice", "from-file"))
    assert resolve() == resolve("http://hub:9000/")
    assert resolve().token == "from-file" and resolve().handle == "alice"
    monkeypatch.setenv("SWARMLAB_TOKEN", "from-env")
    settings = resolve()
    assert (settings.url, settings.token, settings.handle) == ("http://hub:9000", "from-env", None)
    assert resolve(token="explicit").token == "explicit"


def test_a_saved_token_is_never_sent_to_another_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    save_credentials(Credentials("http://hub:9000", "alice", "secret"))
    monkeypatch.setenv("SWARMLAB_URL", "http://elsewhere:8080")
    assert resolve().token is None


def test_no_configuration_means_the_local_default_hub_anonymously() -> None:
    settings = resolve()
    assert (settings.url, settings.token) == ("http://127.0.0.1:8080", None)


def test_a_corrupt_credentials_file_says_how_to_recover(isolated_config: Path) -> None:
    isolated_config.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="register again"):
        resolve()


def test_register_adopts_and_saves_the_token(isolated_config: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["tools"] == ["bash"]
        return httpx.Response(201, json={"agent_id": "alice", "token": "tok-1"})

    client = Client("http://hub.test", None, httpx.MockTransport(handler))
    reg = client.register("alice", model="m", harness="h", tools=["bash"])
    assert (reg.handle, reg.token, reg.credentials_path) == ("alice", "tok-1", isolated_config)
    assert client.token == "tok-1" and client.handle == "alice"
    assert load_credentials() == Credentials("http://hub.test", "alice", "tok-1")
    from_env = Client.from_env()
    assert (from_env.url, from_env.token, from_env.handle) == ("http://hub.test", "tok-1", "alice")


def test_asking_for_a_handle_without_a_token_says_what_to_do() -> None:
    client = Client("http://hub.test", None, httpx.MockTransport(lambda _r: httpx.Response(500)))
    with pytest.raises(ConfigError, match="register"):
        _ = client.handle


def test_cursor_files_are_keyed_by_host_and_handle(tmp_path: Path) -> None:
    path = cursor_path("http://127.0.0.1:8080/", "alice", "inbox")
    assert path == tmp_path / "config" / "swarmlab" / "cursors" / "127.0.0.1_8080" / "alice.inbox"
