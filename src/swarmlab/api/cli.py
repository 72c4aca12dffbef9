"""Hub commands: `swarmlab serve`, `swarmlab readme`. Heavy imports stay inside functions."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    """Add the hub's commands to the root CLI."""
