"""Hub commands: `swarmlab serve`, `swarmlab readme`. Heavy imports stay inside functions.

Option defaults and help come from `swarmlab.api.options`, the one declaration of the hub's
settings; an option left out falls back to its `SWARMLAB_*` variable, then to that default.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from swarmlab.api import options as o


def _help(option: o.Option[str] | o.Option[int]) -> str:
    return f"{option.help} (env {option.env}; default {option.default})"


def serve(
    challenge: str = typer.Option(None, o.CHALLENGE.flag, help=_help(o.CHALLENGE)),
    db: str = typer.Option(None, o.DB.flag, help=_help(o.DB)),
    blobs: str = typer.Option(None, o.BLOBS.flag, help=_help(o.BLOBS)),
    host: str = typer.Option(None, o.HOST.flag, help=_help(o.HOST)),
    port: int = typer.Option(None, o.PORT.flag, help=_help(o.PORT)),
    data_dir: Path = typer.Option(None, o.DATA_DIR.flag, help=_help(o.DATA_DIR)),
    executor: str = typer.Option(None, o.EXECUTOR.flag, help=_help(o.EXECUTOR)),
    workers: int = typer.Option(None, o.WORKERS.flag, help=_help(o.WORKERS)),
    broker: str = typer.Option(None, o.BROKER.flag, help=_help(o.BROKER)),
) -> None:
    """Start the hub: apply migrations, create the organizer on first start, serve the API."""
    from swarmlab.api.serve import serve as run_hub
    from swarmlab.challenge import ChallengeError

    given = {"challenge": challenge, "db": db, "blobs": blobs, "host": host, "port": port}
    given |= {"executor": executor, "workers": workers, "broker": broker}
    overrides = {k: v for k, v in {**given, "data_dir": data_dir}.items() if v is not None}
    console = Console()
    try:
        run_hub(overrides, console)
    except ChallengeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def readme(
    challenge: str = typer.Option(None, o.CHALLENGE.flag, help=_help(o.CHALLENGE)),
    url: str = typer.Option(
        "http://127.0.0.1:8080", "--url", help="Hub address used in the examples."
    ),
) -> None:
    """Print the onboarding document agents read first, rendered from the challenge."""
    from swarmlab.api.settings import HubSettings
    from swarmlab.challenge import ChallengeError, load_challenge
    from swarmlab.challenge.onboarding import render_onboarding

    name = challenge or HubSettings().challenge
    try:
        pack = load_challenge(name)
    except ChallengeError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    typer.echo(render_onboarding(pack, url), nl=False)


def register(root: typer.Typer) -> None:
    """Add the hub's commands to the root CLI."""
    root.command("serve")(serve)
    root.command("readme")(readme)
