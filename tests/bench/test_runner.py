"""Whole harness runs against the fake server (a real process): files, fields, identity."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.bench import SMALL, MakeSubmission, fast_config

from swarmlab.bench.artifacts import token_sha256
from swarmlab.bench.identity import IdentityVerdict
from swarmlab.bench.runner import Progress, run_benchmark

pytestmark = pytest.mark.slow

RUN_FILES = (
    "run_request.json",
    "run_environment.json",
    "server.json",
    "benchmark.jsonl",
    "decode_outputs.jsonl",
    "decode_summary.json",
    "ppl_results.jsonl",
    "ppl_summary.json",
    "summary.json",
    "status.json",
    "server.log",
)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_full_run_writes_every_file(
    make_submission: MakeSubmission, ppl_truth: Path, tmp_path: Path
) -> None:
    seen: list[Progress] = []
    state = tmp_path / "state"
    result = run_benchmark(
        fast_config(make_submission(), state, ppl_truth=ppl_truth), on_progress=seen.append
    )
    assert result.ok, result.error
    for name in RUN_FILES:
        assert (state / name).is_file(), name
    status = load(state / "status.json")
    assert status["status"] == "completed"
    assert status["stages_completed"] == ["setup", "server", "speed", "decode", "ppl"]
    assert {p.stage for p in seen} == {"setup", "server", "speed", "decode", "ppl"}
    assert Progress("speed", SMALL.warmup + SMALL.num_prompts, 5) in seen
    assert_gone(load(state / "server.json")["pid"])


def test_summary_fields(make_submission: MakeSubmission, ppl_truth: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_benchmark(fast_config(make_submission(), state, ppl_truth=ppl_truth))
    summary = load(state / "summary.json")
    bench = rows(state / "benchmark.jsonl")
    assert len(bench) == SMALL.num_prompts == summary["completed"] == summary["num_prompts"]
    assert summary["output_len"] == SMALL.output_len
    assert summary["total_output_tokens"] == SMALL.num_prompts * SMALL.output_len
    assert summary["tps"] == pytest.approx(summary["total_output_tokens"] / summary["duration_s"])
    assert summary["output_tps"] == summary["tps"]
    total = summary["total_output_tokens"] + sum(r["prompt_tokens"] for r in bench)
    assert summary["total_tps"] == pytest.approx(total / summary["duration_s"])
    latencies = sorted(r["latency_s"] for r in bench)
    assert summary["mean_e2e_latency_ms"] == pytest.approx(1000 * sum(latencies) / len(latencies))
    assert latencies[-2] * 1000 <= summary["p99_e2e_latency_ms"] <= latencies[-1] * 1000
    assert sum(latencies) <= summary["duration_s"]
    assert summary["model"] == "fake-model"
    assert summary["dependencies"] == []
    assert summary["decode_num_prompts"] == SMALL.decode_prompts
    assert summary["decode_num_completion_tokens"] == SMALL.decode_prompts * SMALL.decode_max_tokens
    assert summary["decode_tokenizer"] == "server:/tokenize"
    assert summary["ppl_num_tokens"] == 3 * 4
    assert list(summary)[:5] == ["tps", "output_tps", "total_tps", "completed", "duration_s"]


def test_decode_rows_follow_the_contract(make_submission: MakeSubmission, tmp_path: Path) -> None:
    state = tmp_path / "state"
    run_benchmark(fast_config(make_submission(), state))
    decoded = rows(state / "decode_outputs.jsonl")
    assert len(decoded) == SMALL.decode_prompts
    first = decoded[0]
    assert set(first) >= {
        "id",
        "prompt_token_ids",
        "prompt_token_sha256",
        "completion_token_ids",
        "completion_token_sha256",
        "generated_text",
        "num_prompt_tokens",
        "num_completion_tokens",
    }
    for row in decoded:
        assert row["completion_token_sha256"] == token_sha256(row["completion_token_ids"])
        assert row["prompt_token_sha256"] == token_sha256(row["prompt_token_ids"])
        assert row["num_completion_tokens"] == SMALL.decode_max_tokens
        assert row["prompt_token_ids"][:2] == [2, 105]  # the fake's chat template was applied
    public_order = [r["id"] for r in rows(fast_config(Path(), Path()).prompts)]
    assert [r["id"] for r in decoded] != public_order[: len(decoded)]  # shuffled with seed 1


def test_ppl_is_token_weighted(
    make_submission: MakeSubmission, ppl_truth: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run_benchmark(fast_config(make_submission(), state, ppl_truth=ppl_truth))
    results = rows(state / "ppl_results.jsonl")
    ppl = load(state / "ppl_summary.json")
    nll = sum(r["nll_sum"] for r in results)
    tokens = sum(r["num_target_tokens"] for r in results)
    assert ppl["ppl"] == pytest.approx(math.exp(nll / tokens))
    assert ppl["ppl_num_tokens"] == tokens == 12
    assert load(state / "summary.json")["ppl"] == ppl["ppl"]


def test_identity_identical_then_divergent(make_submission: MakeSubmission, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert run_benchmark(fast_config(make_submission(), reference)).ok
    reference_decode = reference / "decode_outputs.jsonl"

    same = run_benchmark(
        fast_config(
            make_submission(name="again"), tmp_path / "same", reference_decode=reference_decode
        )
    )
    assert same.identity is not None
    assert same.identity.verdict is IdentityVerdict.identical
    assert same.summary["identity"] == "IDENTICAL"

    altered = run_benchmark(
        fast_config(
            make_submission("diverge_once"), tmp_path / "altered", reference_decode=reference_decode
        )
    )
    assert altered.ok  # a divergence is a finding, not a failed run
    assert altered.identity is not None
    assert altered.identity.verdict is IdentityVerdict.divergent
    [divergence] = altered.identity.divergences
    assert divergence.first_divergence == 2
    assert divergence.divergent_tokens >= 1
    written = load(tmp_path / "altered" / "identity.json")
    assert written["verdict"] == "DIVERGENT"
    assert altered.summary["identity_divergent_prompts"] == 1


def test_run_request_snapshots_the_manifest(
    make_submission: MakeSubmission, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    submission = make_submission()
    run_benchmark(fast_config(submission, state, labels={"challenge": "fast-gemma"}))
    request = load(state / "run_request.json")
    manifest = load(submission / "manifest.json")
    assert request["manifest"]["serve"] == manifest["serve"]
    assert request["manifest"]["env"] == {"FAKE_MODE": "ok"}
    assert request["labels"] == {"challenge": "fast-gemma"}
    assert request["settings"]["num_prompts"] == SMALL.num_prompts
    environment = load(state / "run_environment.json")
    assert environment["server"]["kind"] == "current"
    assert any(d.startswith("httpx==") for d in environment["server"]["distributions"])
    server = load(state / "server.json")
    assert server["port"] == manifest["port"]
    assert server["models"]["data"][0]["id"] == "fake-model"
    log = (state / "server.log").read_text(encoding="utf-8")
    assert "[server] fake: serving fake-model" in log
    assert "[harness] stage decode" in log


def test_decode_only_run_for_a_reference_decode(
    make_submission: MakeSubmission, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    result = run_benchmark(fast_config(make_submission(), state, stages=frozenset({"decode"})))
    assert result.ok, result.error
    assert not (state / "benchmark.jsonl").exists()
    assert set(result.summary) == {"model", "dependencies"} | {
        k for k in result.summary if k.startswith("decode_")
    }
    assert load(state / "status.json")["stages_completed"] == ["setup", "server", "decode"]
    assert load(state / "run_request.json")["stages"] == ["decode"]
