"""Starting a hub process: migrate, make sure an organizer exists, serve with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from rich.console import Console

from swarmlab.api.app import create_app
from swarmlab.api.notifier import Notifier
from swarmlab.api.services.identity import ORGANIZER, ensure_organizer
from swarmlab.api.settings import HubSettings

SHUTDOWN_GRACE_S = 5


class HubServer(uvicorn.Server):
    """uvicorn, plus: on SIGINT/SIGTERM parked long-polls answer at once and event streams end.

    Otherwise they would hold a graceful shutdown for up to a minute; their clients reconnect.
    Anything still running after SHUTDOWN_GRACE_S is cancelled by uvicorn.
    """

    def __init__(self, config: uvicorn.Config, notifier: Notifier) -> None:
        super().__init__(config)
        self.notifier = notifier

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.notifier.close()
        super().handle_exit(sig, frame)


def write_secret(path: Path, secret: str) -> None:
    """Write a secret to a file only its owner can read (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    path.chmod(0o600)


def announce_organizer(settings: HubSettings, secret: str, console: Console) -> None:
    """Show the organizer token once and keep it in the data dir for its owner."""
    write_secret(settings.organizer_token_file, secret)
    console.print(
        f"[bold]Created the organizer account [cyan]{ORGANIZER}[/cyan].[/bold] Its token, shown "
        f"once (also in {settings.organizer_token_file}, readable only by you):\n{secret}"
    )


def serve(overrides: dict[str, Any], console: Console) -> None:
    """Run a hub with `overrides` on top of the environment and the defaults."""
    settings = HubSettings(**overrides)
    app = create_app(settings)
    secret = ensure_organizer(app.state.hub.db)
    if secret is not None:
        announce_organizer(settings, secret, console)
    console.print(
        f"swarmlab hub for [bold]{app.state.hub.spec.title}[/bold] on "
        f"http://{settings.host}:{settings.port} (database {settings.db})"
    )
    # No per-request access log: writes are in the audit log, and at hundreds of parked
    # long-polls a line per poll costs more CPU than serving them.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    HubServer(config, app.state.hub.notifier).run()
