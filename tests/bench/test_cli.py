"""`swarmlab bench ...`: exit codes, tables and JSON, errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.bench import MakeSubmission
from typer.testing import CliRunner

from swarmlab.bench.artifacts import token_sha256
from swarmlab.cli import app

runner = CliRunner()


def decode_file(path: Path, completions: dict[str, list[int]]) -> Path:
    rows = [
        {
            "id": key,
            "completion_token_ids": ids,
            "completion_token_sha256": token_sha256(ids),
        }
        for key, ids in completions.items()
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("candidate", "code", "words"),
    [
        ({"a": [1, 2], "b": [3]}, 0, "IDENTICAL"),
        ({"a": [1, 9], "b": [3]}, 1, "DIVERGENT"),
        ({"a": [1, 2]}, 2, "INCOMPARABLE"),
    ],
)
def test_identity_exit_codes(
    tmp_path: Path, candidate: dict[str, list[int]], code: int, words: str
) -> None:
    ref = decode_file(tmp_path / "ref.jsonl", {"a": [1, 2], "b": [3]})
    cand = decode_file(tmp_path / "cand.jsonl", candidate)
    result = runner.invoke(app, ["bench", "identity", str(ref), str(cand)])
    assert result.exit_code == code
    assert words in result.output


def test_identity_json_lists_divergences(tmp_path: Path) -> None:
    ref = decode_file(tmp_path / "ref.jsonl", {"a": [1, 2, 3]})
    cand = decode_file(tmp_path / "cand.jsonl", {"a": [1, 2, 4]})
    result = runner.invoke(app, ["bench", "identity", str(ref), str(cand), "--json"])
    report = json.loads(result.output)
    assert report["verdict"] == "DIVERGENT"
    assert report["divergences"][0]["first_divergence"] == 2


def run_folder(tmp_path: Path, name: str, tps: float) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"tps": tps}), encoding="utf-8")
    return str(folder)


def test_compare_single_runs_uses_z(tmp_path: Path) -> None:
    a, b = run_folder(tmp_path, "a", 300.0), run_folder(tmp_path, "b", 310.0)
    result = runner.invoke(app, ["bench", "compare", a, b, "--noise-sd", "1.16", "--json"])
    assert result.exit_code == 0, result.output
    [comparison] = json.loads(result.output)
    assert comparison["test"] == "z"
    assert comparison["verdict"] == "faster"


def test_compare_repeats_uses_welch_and_prints_a_table(tmp_path: Path) -> None:
    a = ",".join(run_folder(tmp_path, f"a{i}", v) for i, v in enumerate([300.0, 301.0, 299.5]))
    b = ",".join(run_folder(tmp_path, f"b{i}", v) for i, v in enumerate([300.5, 299.0, 301.2]))
    result = runner.invoke(app, ["bench", "compare", a, b], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "welch" in result.output
    assert "no real difference" in result.output


def test_compare_needs_readable_runs(tmp_path: Path) -> None:
    a = run_folder(tmp_path, "a", 300.0)
    result = runner.invoke(app, ["bench", "compare", a, str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "no readable `tps`" in result.output
    assert "Traceback" not in result.output


def test_run_rejects_an_unknown_profile(make_submission: MakeSubmission, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "bench",
            "run",
            "--submission",
            str(make_submission()),
            "--state",
            str(tmp_path / "s"),
            "--profile",
            "huge",
        ],
    )
    assert result.exit_code == 1
    assert "no profile 'huge'" in result.output


def test_run_rejects_an_unknown_stage(make_submission: MakeSubmission, tmp_path: Path) -> None:
    args = ["bench", "run", "--submission", str(make_submission()), "--state", str(tmp_path / "s")]
    result = runner.invoke(app, [*args, "--stages", "speed,warp"])
    assert result.exit_code == 1
    assert "stages must be a non-empty subset" in result.output


@pytest.mark.slow
def test_run_ci_profile_json(make_submission: MakeSubmission, tmp_path: Path) -> None:
    args = ["bench", "run", "--submission", str(make_submission()), "--state", str(tmp_path / "s")]
    result = runner.invoke(app, [*args, "--profile", "ci", "--no-install", "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output)
    assert payload["status"] == "completed"
    assert payload["summary"]["num_prompts"] == 16
    assert payload["summary"]["output_len"] == 64
    request = json.loads((tmp_path / "s" / "run_request.json").read_text("utf-8"))
    assert request["labels"] == {"challenge": "fast-gemma", "profile": "ci", "prompt_set": "public"}


@pytest.mark.slow
def test_truth_then_run_with_private_inputs_prints_the_summary(
    make_submission: MakeSubmission, tmp_path: Path
) -> None:
    private = tmp_path / "private"
    private.mkdir()
    pack_private = (
        Path(__file__).resolve().parents[2] / "challenges/fast-gemma/prompts/private.jsonl"
    )
    (private / "prompts.jsonl").write_bytes(pack_private.read_bytes())
    truth = private / "ppl_truth.jsonl"
    built = runner.invoke(
        app,
        [
            "bench",
            "make-ppl-truth",
            "--submission",
            str(make_submission()),
            "--out",
            str(truth),
            "--records",
            "4",
            "--target-len",
            "6",
            "--no-install",
        ],
    )
    assert built.exit_code == 0, built.output
    records = [json.loads(line) for line in truth.read_text("utf-8").splitlines()]
    assert len(records) == 4
    assert all(len(r["target_token_ids"]) == 6 for r in records)
    assert records[0]["context_token_ids"][:2] == [2, 105]

    state = tmp_path / "s"
    args = [
        "bench",
        "run",
        "--submission",
        str(make_submission(name="again")),
        "--state",
        str(state),
    ]
    result = runner.invoke(
        app,
        [*args, "--profile", "ci", "--private", str(private), "--no-install"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "Benchmark: completed" in result.output
    assert "within the cap" in result.output or "OVER the cap" in result.output
    summary = json.loads((state / "summary.json").read_text("utf-8"))
    assert summary["ppl_num_tokens"] == 4 * 6
    decoded = (state / "decode_outputs.jsonl").read_text("utf-8")
    assert '"id":"private-' in decoded
