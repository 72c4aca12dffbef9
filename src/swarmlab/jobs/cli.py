"""Job commands: `swarmlab worker` (a Celery worker that runs benchmark jobs on GPUs)."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    """Add the worker command to the root CLI."""
