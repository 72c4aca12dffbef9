"""Harness commands: `swarmlab bench run | compare | identity | make-ppl-truth`.

Only Typer and Rich at import time; the harness and the challenge pack load inside commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from swarmlab.bench.runner import Progress as StageProgress
    from swarmlab.bench.runner import RunConfig, RunResult
    from swarmlab.challenge import ChallengePack

app = typer.Typer(
    help="Benchmark an OpenAI-compatible entry the way the hub does.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True)


def register(root: typer.Typer) -> None:
    """Add the `bench` group to the root CLI."""
    root.add_typer(app, name="bench")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error (no traceback) and return the Exit to raise."""
    errors.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


@app.command()
def run(
    submission: Path = typer.Option(..., help="Submission folder (manifest.json, serve.py, ...)."),
    state: Path = typer.Option(..., help="Folder the run writes its files into (created)."),
    private: Path | None = typer.Option(
        None,
        help="Private inputs: a prompt file, or a folder with prompts.jsonl "
        "(and optionally ppl_truth.jsonl) replacing the public ones.",
    ),
    challenge: str = typer.Option("fast-gemma", help="Challenge pack (name or folder)."),
    profile: str = typer.Option("full", help="Profile in the pack's bench section: full or ci."),
    prompts: Path | None = typer.Option(None, help="Prompt file overriding the pack's."),
    ppl_truth: Path | None = typer.Option(None, help="Ground-truth file overriding the pack's."),
    reference_decode: Path | None = typer.Option(
        None, help="A reference decode_outputs.jsonl: adds the greedy-identity verdict."
    ),
    tokenizer: Path | None = typer.Option(None, help="Tokenizer folder for chat templating."),
    no_install: bool = typer.Option(
        False, "--no-install", help="Run the server on this interpreter, installing nothing."
    ),
    ready_timeout: float | None = typer.Option(None, help="Seconds to wait for readiness."),
    request_timeout: float | None = typer.Option(None, help="Seconds allowed per request."),
    deadline: float | None = typer.Option(None, help="Seconds allowed for the whole run."),
    stages: str = typer.Option(
        "speed,decode,ppl", help="Measuring stages to run, e.g. `decode` for a reference decode."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run every stage against a submission's server and write the results into --state."""
    from swarmlab.bench.errors import BenchError
    from swarmlab.bench.runner import run_benchmark

    pack = _load_pack(challenge)
    try:
        config = _run_config(pack, profile, submission, state, private, prompts, ppl_truth)
        config = _override(
            config,
            stages=frozenset(s.strip() for s in stages.split(",") if s.strip()),
            reference_decode=reference_decode,
            tokenizer=tokenizer,
            install=not no_install,
            ready_timeout_s=ready_timeout,
            request_timeout_s=request_timeout,
            deadline_s=deadline,
        )
    except (BenchError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if config.ppl_truth is None and "ppl" in config.stages and not as_json:
        console.print("[yellow]no PPL ground truth: the ppl stage is skipped[/yellow]")
    if as_json:
        result = run_benchmark(config)
        console.print_json(data=_result_json(result))
    else:
        result = _run_with_progress(config)
        _print_summary(result, pack)
    if not result.ok:
        raise typer.Exit(1)


def _load_pack(challenge: str) -> ChallengePack:
    from swarmlab.challenge import ChallengeError, load_challenge

    try:
        return load_challenge(challenge)
    except ChallengeError as exc:
        raise fail(str(exc)) from exc


def _run_config(
    pack: ChallengePack,
    profile: str,
    submission: Path,
    state: Path,
    private: Path | None,
    prompts: Path | None,
    ppl_truth: Path | None,
) -> RunConfig:
    """The run's configuration from the pack's bench section, then the command's overrides."""
    from swarmlab.bench.errors import InputError
    from swarmlab.bench.runner import BenchSettings, RunConfig

    bench = pack.spec.bench
    if bench is None:
        raise InputError(f"the challenge {pack.spec.name} has no bench section")
    if profile not in bench.profiles:
        raise InputError(f"no profile {profile!r}; the pack has {', '.join(bench.profiles)}")
    chosen = bench.profiles[profile]
    pack_truth = pack.path(bench.ppl_truth) if bench.ppl_truth else None
    private_prompts, private_truth = _private_inputs(private)
    return RunConfig(
        submission=submission,
        state_dir=state,
        prompts=prompts or private_prompts or pack.path(bench.public_prompts),
        ppl_truth=ppl_truth
        or private_truth
        or (pack_truth if pack_truth and pack_truth.is_file() else None),
        settings=BenchSettings(**chosen.model_dump()),
        ready_timeout_s=bench.ready_timeout_s,
        request_timeout_s=bench.request_timeout_s,
        labels={
            "challenge": pack.spec.name,
            "profile": profile,
            "prompt_set": "private" if private else "public",
        },
    )


def _private_inputs(private: Path | None) -> tuple[Path | None, Path | None]:
    from swarmlab.bench.errors import InputError

    if private is None:
        return None, None
    if private.is_file():
        return private, None
    if not (private / "prompts.jsonl").is_file():
        raise InputError(f"--private {private}: give a prompt file or a folder with prompts.jsonl")
    truth = private / "ppl_truth.jsonl"
    return private / "prompts.jsonl", truth if truth.is_file() else None


def _override(config: RunConfig, **changes: Any) -> RunConfig:
    from dataclasses import replace

    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def _run_with_progress(config: RunConfig) -> RunResult:
    """Run with one Rich progress bar per stage; Ctrl-C cancels cleanly."""
    from swarmlab.bench.runner import run_benchmark

    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, Any] = {}

        def finish(task: Any) -> None:
            state = bars.tasks[task]
            if state.total is None or state.completed < state.total:
                bars.update(task, total=max(state.completed, 1), completed=max(state.completed, 1))
            bars.stop_task(task)

        def show(event: StageProgress) -> None:
            if event.stage not in tasks:
                for earlier in tasks.values():
                    finish(earlier)
                tasks[event.stage] = bars.add_task(event.stage, total=event.total or None)
            bars.update(tasks[event.stage], completed=event.done, total=event.total or None)

        result = run_benchmark(config, on_progress=show)  # Ctrl-C ends it as `cancelled`
        if result.ok and tasks:
            finish(list(tasks.values())[-1])
    return result


def _print_summary(result: RunResult, pack: ChallengePack) -> None:
    s = result.summary
    table = Table(title=f"Benchmark: {result.status}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("TPS (output tok/s)", _num(s.get("tps"))),
        ("total TPS", _num(s.get("total_tps"))),
        ("completed", f"{s.get('completed', '-')} x {s.get('output_len', '-')} tokens"),
        (
            "latency mean / p99 (ms)",
            f"{_num(s.get('mean_e2e_latency_ms'))} / {_num(s.get('p99_e2e_latency_ms'))}",
        ),
        ("duration (s)", _num(s.get("duration_s"))),
        ("harness gap (s)", _num(s.get("harness_gap_s"), 4)),
        (
            "decode",
            f"{s.get('decode_num_prompts', '-')} prompts, {s.get('decode_num_completion_tokens', '-')} tokens",
        ),
        ("PPL", _ppl_text(s.get("ppl"), pack)),
        ("greedy identity", str(s.get("identity", "-"))),
        ("model", str(s.get("model", "-"))),
        ("state", str(result.state_dir)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if result.error:
        raise fail(f"stage {result.failed_stage}: {result.error}")


def _num(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _ppl_text(ppl: Any, pack: ChallengePack) -> str:
    guardrail = pack.spec.scoring.guardrail
    if not isinstance(ppl, int | float):
        return "-"
    if guardrail is None:
        return f"{ppl:.4f}"
    verdict = "within" if guardrail.within(ppl) else "OVER"
    return f"{ppl:.4f} ({verdict} the cap {guardrail.cap:.3f})"


def _result_json(result: RunResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "state_dir": str(result.state_dir),
        "error": result.error,
        "failed_stage": result.failed_stage,
        "summary": result.summary,
    }


@app.command()
def identity(
    reference: Path = typer.Argument(..., help="Reference decode_outputs.jsonl."),
    candidate: Path = typer.Argument(..., help="Candidate decode_outputs.jsonl."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Greedy identity of two decodes: exit 0 IDENTICAL, 1 DIVERGENT, 2 INCOMPARABLE."""
    from swarmlab.bench.identity import check_identity

    report = check_identity(reference, candidate)
    if as_json:
        console.print_json(data=report.to_json())
    else:
        console.print(f"[bold]{report.verdict.value}[/bold] ({report.compared} prompts compared)")
        for problem in report.problems:
            console.print(f"  - {problem}", highlight=False)
        if report.divergences:
            table = Table("id", "first divergence", "divergent tokens", "ref len", "cand len")
            for d in report.divergences:
                table.add_row(
                    d.id,
                    str(d.first_divergence),
                    str(d.divergent_tokens),
                    str(d.reference_tokens),
                    str(d.candidate_tokens),
                )
            console.print(table)
    raise typer.Exit(report.verdict.exit_code)


@app.command()
def compare(
    runs: list[str] = typer.Argument(
        ..., help="Run folders, baseline first; join repeats of one entry with commas: A1,A2,A3."
    ),
    noise_sd: float | None = typer.Option(
        None, help="Run-to-run TPS sd for single runs (default: 0.38% of the baseline)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the comparisons as JSON."),
) -> None:
    """Is a TPS difference real? z-test for single runs, Welch's t-test for repeats."""
    from swarmlab.domain.statistics import compare_tps, statistic_symbol

    if len(runs) < 2:
        raise fail("give a baseline and at least one run to compare with it", 2)
    groups = [_tps_values(group) for group in runs]
    results = [compare_tps(groups[0], other, noise_sd) for other in groups[1:]]
    if as_json:
        payload = [
            {"baseline": runs[0], "candidate": name, **_comparison_json(c)}
            for name, c in zip(runs[1:], results, strict=True)
        ]
        console.print_json(data=payload)
        return
    table = Table("candidate", "mean A", "mean B", "delta", "test", "statistic", "p", "verdict")
    for name, c in zip(runs[1:], results, strict=True):
        statistic = f"{statistic_symbol(c.test)} = {c.statistic:.2f}"
        table.add_row(
            name,
            f"{c.mean_a:.2f} (n={c.n_a})",
            f"{c.mean_b:.2f} (n={c.n_b})",
            f"{c.delta:+.2f}",
            c.test,
            statistic,
            f"{c.p_value:.3g}",
            f"{c.verdict.value}: {c.reason}",
        )
    console.print(table)


def _tps_values(group: str) -> list[float]:
    values = []
    for folder in group.split(","):
        summary = Path(folder) / "summary.json"
        try:
            tps = json.loads(summary.read_text(encoding="utf-8"))["tps"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise fail(
                f"{summary}: no readable `tps` ({exc}); give finished run folders", 2
            ) from exc
        values.append(float(tps))
    return values


def _comparison_json(c: Any) -> dict[str, Any]:
    return {
        "test": c.test,
        "mean_a": c.mean_a,
        "mean_b": c.mean_b,
        "n_a": c.n_a,
        "n_b": c.n_b,
        "delta": c.delta,
        "statistic": c.statistic,
        "p_value": c.p_value,
        "df": c.df,
        "verdict": c.verdict.value,
        "reason": c.reason,
    }


@app.command("make-ppl-truth")
def make_ppl_truth(
    submission: Path = typer.Option(..., help="Submission serving the reference checkpoint."),
    out: Path = typer.Option(..., help="Ground-truth file to write (JSON Lines)."),
    challenge: str = typer.Option("fast-gemma", help="Challenge pack whose prompts to use."),
    prompts: Path | None = typer.Option(None, help="Prompt file overriding the pack's."),
    records: int = typer.Option(128, min=1, help="Records to build (first N prompts)."),
    target_len: int = typer.Option(256, min=1, help="Target tokens per record."),
    tokenizer: Path | None = typer.Option(None, help="Tokenizer folder for chat templating."),
    no_install: bool = typer.Option(
        False, "--no-install", help="Run the server on this interpreter, installing nothing."
    ),
    ready_timeout: float = typer.Option(900.0, help="Seconds to wait for readiness."),
) -> None:
    """Build a PPL ground truth: contexts from the prompts, targets from the served model."""
    from swarmlab.bench.errors import BenchError
    from swarmlab.bench.truth import TruthConfig
    from swarmlab.bench.truth import make_ppl_truth as build

    if prompts is None:
        pack = _load_pack(challenge)
        if pack.spec.bench is None:
            raise fail(f"the challenge {pack.spec.name} has no bench section; pass --prompts")
        prompts = pack.path(pack.spec.bench.public_prompts)
    config = TruthConfig(
        submission=submission,
        out=out,
        prompts=prompts,
        records=records,
        target_len=target_len,
        install=not no_install,
        tokenizer=tokenizer,
        ready_timeout_s=ready_timeout,
    )
    with Progress(*Progress.get_default_columns(), console=console) as bars:
        task = bars.add_task("ground truth", total=records)
        try:
            written = build(
                config, lambda done, total: bars.update(task, completed=done, total=total)
            )
        except BenchError as exc:
            raise fail(f"{exc} (log: {out}.log)") from exc
    console.print(f"wrote {written} records to {out}")
