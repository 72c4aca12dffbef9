"""Engine commands: `swarmlab engine serve | make-tiny`.

Only Typer and Rich at import time: the GPU machine has no hub dependencies, and torch and
transformers are imported inside the commands that need them.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="Inference engine: serve a checkpoint, build the tiny model.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)  # log lines stay whole for log readers


def register(root: typer.Typer) -> None:
    """Add the `engine` group to the root CLI."""
    root.add_typer(app, name="engine")


@app.command("make-tiny")
def make_tiny_command(
    out: Path = typer.Argument(
        ..., help="Directory to write the checkpoint into (created if needed)."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Weight seed; the same seed gives byte-identical files."
    ),
) -> None:
    """Write a tiny random-weight Gemma-4 text checkpoint (config, safetensors, tokenizer)."""
    from swarmlab.engine.tiny import make_tiny

    with console.status(f"Building the tiny Gemma-4 checkpoint in {out}"):
        make_tiny(out, seed)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    console.print(f"[green]Wrote[/] {out} ({size / 1e6:.1f} MB, seed {seed})")


@app.command("serve")
def serve_command(
    model: Path = typer.Option(..., "--model", help="Local Gemma-4 text checkpoint directory."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0 picks a free one)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or bfloat16."),
    served_model_name: str | None = typer.Option(
        None, "--served-model-name", help="Model name in the API (default: the directory's name)."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for torch (default: torch's choice; 1 is fastest for the tiny model on a busy CPU).",
    ),
    backend: str = typer.Option(
        "reference", "--backend", help="Inference backend (reference, or a registered one)."
    ),
) -> None:
    """Serve a checkpoint over an OpenAI-compatible HTTP API, until SIGTERM or Ctrl-C."""
    from swarmlab.engine.backend import UnknownBackendError
    from swarmlab.engine.loading import CheckpointError
    from swarmlab.engine.server import ServeError, ServeOptions, serve

    options = ServeOptions(model, host, port, device, dtype, served_model_name, backend, threads)

    def ready(url: str) -> None:
        console.print(f"Serving [bold]{model}[/] at {url} (backend {backend}, {device}, {dtype})")

    try:
        serve(options, on_ready=ready)
    except (CheckpointError, UnknownBackendError, ServeError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
