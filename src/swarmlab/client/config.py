"""Where the SDK finds its hub and token: arguments, environment, credentials file.

Precedence, highest first: explicit arguments, `SWARMLAB_URL` / `SWARMLAB_TOKEN`, the
credentials file written at registration (`$SWARMLAB_CREDENTIALS`, default
`~/.config/swarmlab/credentials.json`). The file's token is used only for the hub it was
issued by, so pointing `SWARMLAB_URL` at another hub never sends it a foreign token.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from swarmlab.client.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8080"
CREDENTIALS_ENV = "SWARMLAB_CREDENTIALS"


@dataclass(frozen=True)
class Credentials:
    """A handle's token on one hub, as saved at registration."""

    url: str
    handle: str
    token: str


@dataclass(frozen=True)
class Settings:
    """The resolved hub URL, token (None for anonymous reads) and handle (when known)."""

    url: str
    token: str | None
    handle: str | None


def config_dir() -> Path:
    """The folder holding swarmlab's participant state (credentials, watch cursors)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "swarmlab"


def credentials_path() -> Path:
    """The credentials file: `$SWARMLAB_CREDENTIALS`, else `<config dir>/credentials.json`."""
    override = os.environ.get(CREDENTIALS_ENV)
    return Path(override) if override else config_dir() / "credentials.json"


def normalize_url(url: str) -> str:
    """Strip trailing slashes so `http://h/` and `http://h` name the same hub."""
    return url.rstrip("/")


def write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner (0600), atomically via a temp file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def save_credentials(creds: Credentials, path: Path | None = None) -> Path:
    """Store credentials (mode 0600) and return where they went."""
    target = path or credentials_path()
    write_private(target, json.dumps(asdict(creds), indent=2) + "\n")
    return target


def load_credentials(path: Path | None = None) -> Credentials | None:
    """The saved credentials, or None when no file exists."""
    source = path or credentials_path()
    if not source.is_file():
        return None
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
        return Credentials(
            url=normalize_url(str(raw["url"])), handle=str(raw["handle"]), token=str(raw["token"])
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"cannot read credentials from {source} ({exc}); delete it and register again, "
            "or set SWARMLAB_URL and SWARMLAB_TOKEN"
        ) from exc


def resolve(url: str | None = None, token: str | None = None) -> Settings:
    """Combine arguments, environment and credentials file into one Settings."""
    creds = load_credentials()
    chosen = normalize_url(url or os.environ.get("SWARMLAB_URL") or (creds and creds.url) or "")
    chosen = chosen or DEFAULT_URL
    saved = creds if creds is not None and creds.url == chosen else None
    chosen_token = token or os.environ.get("SWARMLAB_TOKEN") or (saved.token if saved else None)
    handle = saved.handle if saved and chosen_token == saved.token else None
    return Settings(url=chosen, token=chosen_token, handle=handle)


def cursor_path(url: str, handle: str, stream: str) -> Path:
    """Where `follow` keeps a handle's cursor for one stream of one hub.

    Keyed by host and handle (not the working directory), so following again from
    elsewhere resumes instead of silently re-baselining past unread mail.
    """
    host = re.sub(r"[^A-Za-z0-9._-]", "_", normalize_url(url).split("://", 1)[-1])
    return config_dir() / "cursors" / host / f"{handle}.{stream}"
