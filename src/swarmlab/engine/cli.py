"""Engine commands: `swarmlab engine serve | make-tiny | bench`.

Only Typer and Rich at import time: the GPU machine has no hub dependencies.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Inference engine: serve, build the tiny model, benchmark.", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    """Add the `engine` group to the root CLI."""
    root.add_typer(app, name="engine")
