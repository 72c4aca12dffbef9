"""`swarmlab submit DIR` and `swarmlab jobs ...`: submissions and benchmark jobs from a shell.

Only Typer, Rich and the standard library load at import time; the SDK loads inside commands.
Hub refusals print their message and hint and exit 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from swarmlab.client.jobs import JobsApi, JobUpdate

jobs_app = typer.Typer(
    help="Benchmark jobs: the queue, your jobs, their logs.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

URL = typer.Option(None, "--url", help="Hub URL (default: SWARMLAB_URL or the credentials file).")
TOKEN = typer.Option(None, "--token", help="Bearer token (default: SWARMLAB_TOKEN or credentials).")


@contextmanager
def _jobs(url: str | None, token: str | None) -> Iterator[JobsApi]:
    """The jobs SDK on a configured client; SDK errors become a message and exit code 1."""
    from swarmlab.client.cli import _fail
    from swarmlab.client.errors import SwarmlabError
    from swarmlab.client.jobs import JobsApi
    from swarmlab.client.sdk import Client

    try:
        with Client.from_env(url, token) as client:
            yield JobsApi(client)
    except SwarmlabError as exc:
        _fail(exc)


def submit(
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="The submission folder.")
    ],
    run: bool = typer.Option(True, "--run/--no-run", help="Queue a benchmark job right away."),
    profile: str = typer.Option("full", "--profile", help="Bench profile of the challenge."),
    watch: bool = typer.Option(False, "--watch", help="Follow the job until it ends."),
    url: str | None = URL,
    token: str | None = TOKEN,
) -> None:
    """Pack FOLDER, upload it (manifest checked by the hub) and queue a benchmark of it."""
    with _jobs(url, token) as api:
        submission = api.submit(folder)
        out.print(f"submission [cyan]{submission['id']}[/cyan] sha256 {submission['sha256'][:12]}")
        if not run:
            return
        job = api.request(submission["id"], profile)
        quota = job.get("quota") or {}
        left = f"{quota['remaining']} of {quota['limit']} left" if quota else "no quota"
        out.print(f"job [cyan]{job['id']}[/cyan] {job['status']} ({left})")
        if watch:
            raise typer.Exit(_watch(api, job["id"]))


@jobs_app.command("list")
def list_jobs(
    agent: str | None = typer.Option(None, "--agent", help="Only this handle's jobs."),
    status: str | None = typer.Option(None, "--status", help="Only jobs in this state."),
    url: str | None = URL,
    token: str | None = TOKEN,
) -> None:
    """The public queue: who waits, what runs where."""
    with _jobs(url, token) as api:
        items = api.jobs(agent, status)["items"]
    table = Table("job", "owner", "purpose", "status", "stage", "worker", "created")
    for job in items:
        table.add_row(
            job["id"],
            job["owner"],
            job["purpose"],
            job["status"],
            job["stage"],
            job["worker"] or "",
            job["created_at"][:19],
        )
    out.print(table)


@jobs_app.command("show")
def show(job_id: str, url: str | None = URL, token: str | None = TOKEN) -> None:
    """One job as JSON."""
    with _jobs(url, token) as api:
        out.print_json(json.dumps(api.job(job_id)))


@jobs_app.command("cancel")
def cancel(job_id: str, url: str | None = URL, token: str | None = TOKEN) -> None:
    """Cancel a job of yours."""
    with _jobs(url, token) as api:
        job = api.cancel(job_id)
    out.print(
        f"job {job['id']}: {job['status']}"
        + (" (stop requested)" if job["cancel_requested"] else "")
    )


@jobs_app.command("watch")
def watch(job_id: str, url: str | None = URL, token: str | None = TOKEN) -> None:
    """Follow a job live: stage, progress, elapsed time and its log; exit 0 if it completed."""
    with _jobs(url, token) as api:
        raise typer.Exit(_watch(api, job_id))


def _watch(api: JobsApi, job_id: str) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out) as bar:
        task = bar.add_task(job_id, total=1.0)

        def show(update: JobUpdate) -> None:
            for line in update.new_log:
                bar.console.print(line.rstrip("\n"), markup=False, highlight=False)
            job = update.job
            bar.update(task, completed=job["progress"], description=_describe(job))

        final = api.watch(job_id, show)
    summary = final.get("summary") or {}
    out.print(
        f"{job_id} {final['status']} after {time.monotonic() - started:.0f}s"
        + (f": {final['message']}" if final["message"] else "")
    )
    if summary:
        out.print_json(json.dumps(summary))
    return 0 if final["status"] == "completed" else 1


def _describe(job: dict[str, Any]) -> str:
    where = f" on {job['worker']}" if job.get("worker") else ""
    return f"{job['id']} {job['status']} {job['stage']}{where}"


def register(root: typer.Typer) -> None:
    """Add `submit` and the `jobs` group to the root CLI."""
    root.command("submit")(submit)
    root.add_typer(jobs_app, name="jobs")
