"""The benchmark's pipeline end to end on CPU with the tiny preset (numbers not asserted)."""

from __future__ import annotations

import pytest
import torch

from swarmlab.engine.bench import BenchSettings, run_bench


@pytest.mark.slow
def test_bench_reports_every_section_on_the_tiny_preset() -> None:
    settings = BenchSettings(
        preset="gemma-4-tiny",
        prompt_tokens=40,
        new_tokens=12,
        hf_new_tokens=3,
        max_k=2,
        modes=("eager", "graph"),
        prefill_chunk=16,
        check_prompts=2,
        check_tokens=6,
        copy_gib=0.01,
    )
    steps: list[str] = []
    report = run_bench(settings, torch.device("cpu"), steps.append).to_json()
    assert report["bytes_per_token"] > 0
    assert report["roofline_tps"] > 0
    assert report["transformers"]["tps"] > 0
    assert set(report["modes"]) == {"eager", "graph"}
    assert all("error" not in row and row["tps"] > 0 for row in report["modes"].values())
    assert [row["k"] for row in report["speculative"]] == [1, 2]
    assert report["check"]["prompts"] == 2
    # bf16: the fast path is about as close to float32 as transformers' own bf16 path is
    check = report["check"]
    assert (
        check["fast_bf16_vs_fp32_mean_abs_diff"]
        < 2 * check["transformers_bf16_vs_fp32_mean_abs_diff"]
    )
    assert steps[0] == "device copy bandwidth"
