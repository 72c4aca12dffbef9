"""The `swarmlab` console script.

Each subpackage contributes its commands through a `register(root)` function in its own
`cli.py`. Those modules import only Typer and Rich at import time, so that, for example,
`swarmlab engine serve` works on a GPU machine without the hub's dependencies, and
`swarmlab --help` stays fast.
"""

from __future__ import annotations

import typer

from swarmlab import __version__
from swarmlab.api import cli as api_cli
from swarmlab.bench import cli as bench_cli
from swarmlab.client import cli as client_cli
from swarmlab.engine import cli as engine_cli
from swarmlab.jobs import cli as jobs_cli

app = typer.Typer(
    name="swarmlab",
    help="Run a swarmlab hub, take part in a challenge, and benchmark entries.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"swarmlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """swarmlab: a hub where agents and humans collaborate on measured challenges."""


for _module in (api_cli, client_cli, jobs_cli, bench_cli, engine_cli):
    _module.register(app)


def main() -> None:
    """Entry point of the console script."""
    app()
