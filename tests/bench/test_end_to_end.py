"""The whole harness on CPU with the real tiny Gemma-4 model, served by the example submission.

tiny model -> challenges/fast-gemma/examples/reference -> PPL ground truth (make-ppl-truth) ->
every stage -> summary.json checked field by field; the served greedy decode is IDENTICAL to
plain greedy decoding of the checkpoint in this process; a server altered to return one
different token is caught as DIVERGENT.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.services import free_port
from typer.testing import CliRunner

from swarmlab.bench.artifacts import token_sha256
from swarmlab.bench.identity import IdentityVerdict, check_identity
from swarmlab.bench.runner import BenchSettings, RunConfig, RunResult, run_benchmark
from swarmlab.bench.truth import TruthConfig, make_ppl_truth
from swarmlab.cli import app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "challenges" / "fast-gemma" / "examples" / "reference"
PROMPTS = ROOT / "challenges" / "fast-gemma" / "prompts" / "public.jsonl"
SETTINGS = BenchSettings(num_prompts=3, output_len=12, warmup=1, decode_prompts=3, ppl_records=3)
TRUTH_RECORDS, TARGET_LEN = 3, 10


@dataclass(frozen=True)
class EndToEnd:
    submission: Path
    truth: Path
    result: RunResult


def reference_submission(folder: Path, model: Path, serve: Path | None = None, **env: str) -> Path:
    """The example submission with the tiny model copied into ./model, on a free port."""
    shutil.copytree(EXAMPLE, folder)
    shutil.copytree(model, folder / "model")
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    manifest["port"] = free_port()
    manifest["env"].update(env)
    if serve is not None:
        shutil.copy(serve, folder / "serve.py")
    (folder / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return folder


def config(submission: Path, state: Path, truth: Path, **changes: Any) -> RunConfig:
    return RunConfig(
        submission=submission,
        state_dir=state,
        prompts=PROMPTS,
        ppl_truth=truth,
        settings=SETTINGS,
        install=False,
        ready_timeout_s=180,
        poll_interval_s=0.2,
        request_timeout_s=120,
        **changes,
    )


@pytest.fixture(scope="module")
def e2e(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> EndToEnd:
    root = tmp_path_factory.mktemp("e2e")
    submission = reference_submission(root / "reference", tiny_model_dir)
    truth = root / "truth.jsonl"
    written = make_ppl_truth(
        TruthConfig(
            submission,
            truth,
            PROMPTS,
            records=TRUTH_RECORDS,
            target_len=TARGET_LEN,
            install=False,
            ready_timeout_s=180,
            poll_interval_s=0.2,
        )
    )
    assert written == TRUTH_RECORDS
    result = run_benchmark(config(submission, root / "run", truth))
    assert result.ok, f"{result.error}\n{(root / 'run' / 'server.log').read_text('utf-8')[-3000:]}"
    return EndToEnd(submission, truth, result)


def load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_ground_truth_comes_from_the_served_model(e2e: EndToEnd) -> None:
    records = rows(e2e.truth)
    assert [r["id"] for r in records] == [r["id"] for r in rows(PROMPTS)[:TRUTH_RECORDS]]
    assert all(len(r["target_token_ids"]) == TARGET_LEN for r in records)
    assert all(r["context_token_ids"][0] == 2 for r in records)  # <bos> from the chat template


def test_summary_field_by_field(e2e: EndToEnd) -> None:
    state = e2e.result.state_dir
    summary = load(state / "summary.json")
    bench = rows(state / "benchmark.jsonl")
    generated = SETTINGS.num_prompts * SETTINGS.output_len
    assert summary["completed"] == summary["num_prompts"] == len(bench) == SETTINGS.num_prompts
    assert summary["output_len"] == SETTINGS.output_len
    assert summary["warmup"] == SETTINGS.warmup
    assert summary["total_output_tokens"] == generated
    assert all(r["reported_completion_tokens"] == SETTINGS.output_len for r in bench)
    assert summary["duration_s"] >= sum(r["latency_s"] for r in bench) > 0
    assert summary["tps"] == pytest.approx(generated / summary["duration_s"])
    assert summary["output_tps"] == summary["tps"]
    prompt_tokens = sum(r["prompt_tokens"] for r in bench)
    assert summary["total_input_tokens"] == prompt_tokens > 0
    assert summary["total_tps"] == pytest.approx(
        (generated + prompt_tokens) / summary["duration_s"]
    )
    latencies = [r["latency_s"] * 1000 for r in bench]
    assert summary["mean_e2e_latency_ms"] == pytest.approx(sum(latencies) / len(latencies))
    assert sorted(latencies)[-2] <= summary["p99_e2e_latency_ms"] <= max(latencies)
    assert summary["model"] == "gemma-4-e4b-it"
    assert summary["dependencies"] == []
    assert summary["decode_num_prompts"] == SETTINGS.decode_prompts
    assert summary["decode_max_tokens"] == SETTINGS.output_len
    assert summary["decode_num_completion_tokens"] == SETTINGS.decode_prompts * SETTINGS.output_len
    assert summary["decode_tokenizer"] == f"local:{e2e.submission / 'model'}"
    assert summary["decode_shuffle_seed"] == 1
    ppl = load(state / "ppl_summary.json")
    assert summary["ppl"] == ppl["ppl"] > 1
    assert math.isfinite(summary["ppl"])
    assert summary["ppl_num_tokens"] == TRUTH_RECORDS * TARGET_LEN
    assert "identity" not in summary
    assert load(state / "status.json")["status"] == "completed"
    assert load(state / "server.json")["model"] == "gemma-4-e4b-it"


def plain_greedy_reference(model_dir: Path, decode: Path, out: Path) -> Path:
    """A reference decode_outputs.jsonl from plain greedy decoding in this process."""
    from swarmlab.engine.backend import BackendOptions, create_backend

    backend = create_backend("reference", BackendOptions(model_dir))
    with out.open("w", encoding="utf-8") as handle:
        for row in rows(decode):
            ids = backend.generate(row["prompt_token_ids"], SETTINGS.output_len, None)
            reference = {
                "id": row["id"],
                "prompt_token_ids": row["prompt_token_ids"],
                "prompt_token_sha256": token_sha256(row["prompt_token_ids"]),
                "completion_token_ids": ids,
                "completion_token_sha256": token_sha256(ids),
            }
            handle.write(json.dumps(reference) + "\n")
    return out


@pytest.fixture(scope="module")
def reference_decode(e2e: EndToEnd, tiny_model_dir: Path) -> Path:
    decode = e2e.result.state_dir / "decode_outputs.jsonl"
    return plain_greedy_reference(tiny_model_dir, decode, decode.parent.parent / "reference.jsonl")


def test_served_decode_is_identical_to_plain_greedy(e2e: EndToEnd, reference_decode: Path) -> None:
    candidate = e2e.result.state_dir / "decode_outputs.jsonl"
    assert check_identity(reference_decode, candidate).verdict is IdentityVerdict.identical
    cli = CliRunner().invoke(app, ["bench", "identity", str(reference_decode), str(candidate)])
    assert cli.exit_code == 0, cli.output


def test_altered_server_is_caught_as_divergent(
    e2e: EndToEnd, reference_decode: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    first_decode_call = SETTINGS.warmup + SETTINGS.num_prompts + 1
    submission = reference_submission(
        tmp_path / "altered",
        tiny_model_dir,
        serve=Path(__file__).with_name("altered_serve.py"),
        ALTER_AT_CALL=str(first_decode_call),
    )
    state = tmp_path / "run"
    result = run_benchmark(config(submission, state, e2e.truth, reference_decode=reference_decode))
    assert result.ok, result.error
    assert result.identity is not None
    assert result.identity.verdict is IdentityVerdict.divergent
    [divergence] = result.identity.divergences
    assert divergence.id == rows(state / "decode_outputs.jsonl")[0]["id"]
    assert divergence.first_divergence == 2
    assert load(state / "summary.json")["identity"] == "DIVERGENT"
    assert "altered: changed token 2" in (state / "server.log").read_text("utf-8")
