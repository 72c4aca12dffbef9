"""Engine commands: `swarmlab engine serve | make-tiny | bench`.

Only Typer and Rich at import time: the GPU machine has no hub dependencies, and torch and
transformers are imported inside the commands that need them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Inference engine: serve a checkpoint, build the tiny model, benchmark decoding.",
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


@app.command()
def bench(
    preset: str = typer.Option("gemma-4-e4b", help="Decoder shape to benchmark."),
    random_weights: bool = typer.Option(
        False, "--random-weights", help="Use random weights of the preset's shape (required)."
    ),
    device: str = typer.Option("cuda", help="CUDA device to run on."),
    prompt_tokens: int = typer.Option(1024, help="Prompt length for the timed requests."),
    new_tokens: int = typer.Option(512, help="Tokens decoded per timed request."),
    hf_new_tokens: int = typer.Option(32, help="Tokens for the (slow) transformers baseline."),
    max_k: int = typer.Option(8, help="Largest speculative K whose verify step is timed."),
    mode: list[str] = typer.Option(
        None,
        help="Fast-path modes to run (repeatable); default: eager, graph, compile+graph, triton+compile+graph.",
    ),
    check_prompts: int = typer.Option(
        0, help="Prompts for the bf16 fast-vs-transformers check (0 skips it)."
    ),
    check_tokens: int = typer.Option(256, help="Tokens decoded per check prompt."),
    prefill_chunk: int = typer.Option(512, help="Prompt tokens per prefill step."),
    tune_fused: bool = typer.Option(
        False,
        help="Time tile configs for the fused modes' mat-vecs, each alone (about a minute); "
        "by default they use the tiles shipped for this GPU (tuned inside the whole step).",
    ),
    fused_configs: Path | None = typer.Option(
        None,
        help="Tile configs for the fused modes: a bench JSON from an earlier run or a tiles "
        "file (skips tuning).",
    ),
    json_path: Path | None = typer.Option(None, "--json", help="Write the full report here."),
    spec_graph_k: int = typer.Option(
        0,
        help="Time the one-graph draft+verify step for K = 1..N with a small random draft (0 skips it).",
    ),
    spec_graph_mode: str = typer.Option(
        "graph", help="The mode (one of --mode) whose target runner the one-graph step uses."
    ),
) -> None:
    """Measure single-stream decode speed against the GPU's memory roofline."""
    if not random_weights:
        raise typer.BadParameter(
            "only random-weight benchmarks exist so far; pass --random-weights",
            param_hint="--random-weights",
        )
    import torch

    from swarmlab.engine.bench import DEFAULT_MODES, MODES, BenchSettings, run_bench

    unknown = sorted(set(mode or ()) - set(MODES))
    if unknown:
        raise typer.BadParameter(
            f"unknown modes {unknown}; choose from {', '.join(MODES)}", param_hint="--mode"
        )
    modes = tuple(mode or DEFAULT_MODES)
    if spec_graph_k and spec_graph_mode not in modes:
        raise typer.BadParameter(
            f"{spec_graph_mode!r} is not among the modes run ({', '.join(modes)}); add it with "
            "--mode or pick one of them",
            param_hint="--spec-graph-mode",
        )
    if not torch.cuda.is_available():
        console.print(
            "[red]bench needs a CUDA GPU[/red]: run it on a GPU machine (CPU timings mean nothing here)"
        )
        raise typer.Exit(2)
    settings = BenchSettings(
        preset=preset,
        prompt_tokens=prompt_tokens,
        new_tokens=new_tokens,
        hf_new_tokens=hf_new_tokens,
        max_k=max_k,
        modes=modes,
        check_prompts=check_prompts,
        check_tokens=check_tokens,
        prefill_chunk=prefill_chunk,
        spec_graph_k=spec_graph_k,
        spec_graph_mode=spec_graph_mode,
        tune_fused=tune_fused,
        fused_configs=_saved_fused_configs(fused_configs),
    )

    def save(report: Any) -> None:
        if json_path is not None:
            json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")

    def progress(step: str) -> None:
        console.print(f"[dim]... {step}[/dim]")

    report = run_bench(settings, torch.device(device), progress, save)
    save(report)
    _print_bench(report.to_json())


def _saved_fused_configs(path: Path | None) -> dict[str, Any]:
    """The fused tile configs recorded in an earlier bench JSON, or in a tiles file (the
    shipped `fast/tiles/*.json` format, as `benchmarks/engine_fused.py --tune-in-step`
    writes); empty without a path."""
    if path is None:
        return {}
    from swarmlab.engine.fast.fused import read_configs

    try:
        return read_configs(path)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(
            f"cannot read fused configs from {path}: {exc}; pass a JSON written by "
            "`swarmlab engine bench --json` with a fused mode, or a tiles file",
            param_hint="--fused-configs",
        ) from exc


def _print_bench(data: dict[str, Any]) -> None:
    roofline = data["roofline_tps"]
    console.print(
        f"{data['gpu']}: copy bandwidth {data['copy_bandwidth_gbs']:.0f} GB/s, "
        f"{data['bytes_per_token'] / 1e9:.2f} GB per token -> roofline {roofline:.0f} tok/s"
    )
    table = Table("path", "tok/s", "% roofline", "x transformers", "TTFT ms", "peak GB")
    hf = data["transformers"]
    table.add_row(
        "transformers eager",
        f"{hf['tps']:.1f}",
        f"{100 * hf['tps'] / roofline:.1f}",
        "1.0",
        f"{hf['ttft_ms']:.0f}",
        "",
    )
    for name, row in data["modes"].items():
        if "error" in row:
            table.add_row(name, "[red]failed[/red]", row["error"][:60], "", "", "")
            continue
        table.add_row(
            name,
            f"{row['tps']:.1f}",
            f"{100 * row['ratio_to_roofline']:.1f}",
            f"{row.get('x_transformers', 0):.1f}",
            f"{row['ttft_ms']:.1f}",
            f"{row['peak_memory_gb']:.1f}",
        )
    Console().print(table)
    _print_accuracy(data["modes"])
    if data["speculative"]:
        spec = Table("K", "verify ms", "decode ms", "verify / decode")
        for row in data["speculative"]:
            spec.add_row(
                str(row["k"]),
                f"{row['verify_ms']:.2f}",
                f"{row['decode_ms']:.2f}",
                f"{row['ratio']:.2f}",
            )
        Console().print(spec)
    if data.get("spec_graph"):
        _print_spec_graph(data["spec_graph"])


def _print_spec_graph(rows: list[dict[str, Any]]) -> None:
    if "error" in rows[0]:
        console.print(f"[red]one-graph speculative step failed:[/red] {rows[0]['error']}")
        return
    rates = list(rows[0]["speedup_at_acceptance"])
    table = Table(
        "K",
        "step ms",
        "decode ms",
        "step / decode",
        "x if all accepted",
        *(f"x at {rate} acceptance" for rate in rates),
    )
    for row in rows:
        table.add_row(
            str(row["k"]),
            f"{row['step_ms']:.2f}",
            f"{row['decode_ms']:.2f}",
            f"{row['ratio']:.2f}",
            f"{row['speedup_all_accepted']:.2f}",
            *(f"{row['speedup_at_acceptance'][rate]:.2f}" for rate in rates),
        )
    console.print(f"one-graph speculative step (draft decode {rows[0]['draft_decode_ms']:.2f} ms)")
    Console().print(table)


def _print_accuracy(modes: dict[str, dict[str, Any]]) -> None:
    """Quantized modes' teacher-forced logits against the bf16 fast path's."""
    rows = {name: row["accuracy"] for name, row in modes.items() if "accuracy" in row}
    if not rows:
        return
    table = Table("quantized path", "relative logit error vs bf16", "top-1 agreement")
    for name, row in rows.items():
        table.add_row(
            f"{name} ({row['prompts']} x {row['tokens']} tokens)",
            f"{row['relative_logit_error']:.3f}",
            f"{100 * row['top1_agreement']:.1f}%",
        )
    Console().print(table)
