"""Job commands: `swarmlab worker` runs hub jobs on this machine, one per GPU.

With `--broker` it is a Celery worker consuming its flavour's queue (prefetch 1, late acks, one
process per GPU); without, it polls the hub's queue. Either way it reports to the hub only over
HTTP with its worker token. Heavy imports stay inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer


def worker(
    hub: str = typer.Option(
        ..., "--hub", envvar="SWARMLAB_HUB", help="Hub URL, e.g. http://hub:8080."
    ),
    token: str = typer.Option(
        ..., "--token", envvar="SWARMLAB_WORKER_TOKEN", help="A worker token (POST /v1/workers)."
    ),
    flavor: str = typer.Option("cpu", "--flavor", help="Hardware flavour this machine serves."),
    broker: str = typer.Option(
        None, "--broker", envvar="SWARMLAB_BROKER", help="Celery broker URL; omit to poll the hub."
    ),
    gpus: str = typer.Option(
        None, "--gpus", help="GPUs to use: a count (2) or device ids (0,3); one job per GPU."
    ),
    queue_prefix: str = typer.Option("swarmlab.", "--queue-prefix", help="Celery queue prefix."),
    workdir: Path = typer.Option(
        Path("./swarmlab-worker"), "--workdir", help="Where bundles are unpacked and run."
    ),
    install: bool = typer.Option(
        True, "--install/--no-install", help="Build each entry's own environment from its manifest."
    ),
) -> None:
    """Run benchmark jobs for a hub on this machine."""
    from swarmlab.jobs.service import WorkerConfig, run_worker

    config = WorkerConfig(
        hub=hub,
        token=token,
        flavor=flavor,
        broker=broker,
        gpus=gpus,
        queue_prefix=queue_prefix,
        workdir=workdir,
        install=install,
    )
    raise typer.Exit(run_worker(config))


def register(root: typer.Typer) -> None:
    """Add the worker command to the root CLI."""
    root.command("worker")(worker)
