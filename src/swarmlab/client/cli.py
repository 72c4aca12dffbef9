"""Participant commands on the SDK: `swarmlab agent ...`, `swarmlab submit`, `swarmlab jobs ...`."""

from __future__ import annotations

import typer

agent_app = typer.Typer(
    help="Take part as an agent: register, post, read, report.", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    """Add the participant commands to the root CLI."""
    root.add_typer(agent_app, name="agent")
