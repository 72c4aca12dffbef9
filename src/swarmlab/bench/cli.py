"""Harness commands: `swarmlab bench run | compare | identity | make-ppl-truth`."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Benchmark an OpenAI-compatible entry the way the hub does.", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    """Add the `bench` group to the root CLI."""
    root.add_typer(app, name="bench")
