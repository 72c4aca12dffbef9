"""Faults end a run with a clear error in status.json and the log, and nothing hangs."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.bench import MakeSubmission, fast_config

from swarmlab.bench.runner import Progress, RunResult, run_benchmark

pytestmark = pytest.mark.slow


def status(result: RunResult) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((result.state_dir / "status.json").read_text("utf-8"))
    return data


def log_text(result: RunResult) -> str:
    return (result.state_dir / "server.log").read_text(encoding="utf-8")


def assert_failed(result: RunResult, stage: str, error_type: str, words: str) -> None:
    """The run failed in `stage`, and status.json, the log and the result all say why."""
    recorded = status(result)
    assert result.status == recorded["status"] == "error"
    assert result.failed_stage == recorded["stage"] == stage
    assert recorded["error_type"] == error_type
    assert words in recorded["error"]
    assert result.error is not None and words in result.error
    assert words in log_text(result)
    assert recorded["finished_at"] is not None


def assert_server_gone(result: RunResult) -> None:
    server = result.state_dir / "server.json"
    if server.is_file():
        with pytest.raises(ProcessLookupError):
            os.kill(json.loads(server.read_text("utf-8"))["pid"], 0)


def test_bad_manifest_stops_before_anything_starts(
    make_submission: MakeSubmission, tmp_path: Path
) -> None:
    submission = make_submission()
    manifest = json.loads((submission / "manifest.json").read_text("utf-8"))
    del manifest["serve"]
    manifest["port"] = "8000"
    (submission / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    result = run_benchmark(fast_config(submission, tmp_path / "state"))
    assert_failed(result, "setup", "ManifestError", "serve: missing")
    assert "port: must be an integer" in status(result)["error"]
    assert not (tmp_path / "state" / "summary.json").exists()
    assert not (tmp_path / "state" / "server.json").exists()


def test_server_crashing_at_start(make_submission: MakeSubmission, tmp_path: Path) -> None:
    result = run_benchmark(fast_config(make_submission("crash"), tmp_path / "state"))
    assert_failed(result, "server", "ServerExitedError", "exited with code 3")
    assert "CUDA out of memory (simulated" in status(result)["error"]  # the log tail is quoted


def test_server_never_ready(make_submission: MakeSubmission, tmp_path: Path) -> None:
    config = fast_config(make_submission("never_ready"), tmp_path / "state", ready_timeout_s=1.0)
    result = run_benchmark(config)
    assert_failed(result, "server", "ServerNotReadyError", "within 1 s")


def test_server_hanging_mid_request(make_submission: MakeSubmission, tmp_path: Path) -> None:
    config = fast_config(
        make_submission("hang_after:3"), tmp_path / "state", request_timeout_s=1.0, stop_grace_s=1
    )
    result = run_benchmark(config)
    assert_failed(result, "speed", "RequestTimeoutError", "no complete answer within 1 s")
    assert "[server] fake: hanging on POST /v1/chat/completions" in log_text(result)
    assert_server_gone(result)


def test_server_dying_mid_request(make_submission: MakeSubmission, tmp_path: Path) -> None:
    result = run_benchmark(fast_config(make_submission("exit_after:4"), tmp_path / "state"))
    assert_failed(result, "speed", "ServerExitedError", "exited with code 1 mid-request")
    assert "fake: dying during POST" in status(result)["error"]


@pytest.mark.parametrize(
    ("mode", "stage", "field", "kept"),
    [
        ("no_token_ids", "decode", "choices[0].token_ids", "tps"),
        ("no_prompt_logprobs", "ppl", "choices[0].prompt_logprobs", "decode_num_prompts"),
        ("no_usage", "speed", "usage.completion_tokens", None),
        ("no_tokenize", "decode", "POST /tokenize", "tps"),
    ],
)
def test_endpoint_missing_a_field(
    make_submission: MakeSubmission,
    ppl_truth: Path,
    tmp_path: Path,
    mode: str,
    stage: str,
    field: str,
    kept: str | None,
) -> None:
    result = run_benchmark(
        fast_config(make_submission(mode), tmp_path / "state", ppl_truth=ppl_truth)
    )
    assert_failed(result, stage, "EndpointError", field)
    summary_file = tmp_path / "state" / "summary.json"
    if kept is None:
        assert not summary_file.exists()
    else:  # earlier stages' fields stay, the failed stage's are absent
        summary = json.loads(summary_file.read_text("utf-8"))
        assert kept in summary
        assert "ppl" not in summary
    assert_server_gone(result)


def test_cancel_stops_the_run(make_submission: MakeSubmission, tmp_path: Path) -> None:
    cancel = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.stage == "speed" and progress.done == 2:
            cancel.set()

    result = run_benchmark(
        fast_config(make_submission(), tmp_path / "state"), on_progress=on_progress, cancel=cancel
    )
    assert result.status == status(result)["status"] == "cancelled"
    assert status(result)["error_type"] == "RunCancelled"
    assert_server_gone(result)


def test_deadline_times_the_run_out(make_submission: MakeSubmission, tmp_path: Path) -> None:
    config = fast_config(make_submission("hang_after:2"), tmp_path / "state", deadline_s=3.0)
    result = run_benchmark(config)
    assert result.status == status(result)["status"] == "timed_out"
    assert "exceeded its 3 s limit" in status(result)["error"]
    assert_server_gone(result)


def test_unreadable_prompts_are_an_input_error(
    make_submission: MakeSubmission, tmp_path: Path
) -> None:
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"id": "a"}\n', encoding="utf-8")
    result = run_benchmark(fast_config(make_submission(), tmp_path / "state", prompts=bad))
    assert_failed(result, "setup", "InputError", "non-empty `prompt`")
