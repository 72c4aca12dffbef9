"""The benchmark's pipeline end to end on CPU with the tiny preset (numbers not asserted)."""

from __future__ import annotations

import pytest
import torch

from swarmlab.engine.bench import (
    BenchSettings,
    measure_spec_graph,
    random_draft_model,
    random_transformers_model,
    run_bench,
)
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import GreedyRunner


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
        spec_graph_k=2,
    )
    steps: list[str] = []
    report = run_bench(settings, torch.device("cpu"), steps.append).to_json()
    assert report["bytes_per_token"] > 0
    assert report["roofline_tps"] > 0
    assert report["transformers"]["tps"] > 0
    assert set(report["modes"]) == {"eager", "graph"}
    assert all("error" not in row and row["tps"] > 0 for row in report["modes"].values())
    assert [row["k"] for row in report["speculative"]] == [1, 2]
    assert [row["k"] for row in report["spec_graph"]] == [1, 2]
    assert report["check"]["prompts"] == 2
    # bf16: the fast path is about as close to float32 as transformers' own bf16 path is
    check = report["check"]
    assert (
        check["fast_bf16_vs_fp32_mean_abs_diff"]
        < 2 * check["transformers_bf16_vs_fp32_mean_abs_diff"]
    )
    assert steps[0] == "device copy bandwidth"


def test_the_one_graph_step_is_timed_for_each_k() -> None:
    cpu = torch.device("cpu")

    def runner(model: object) -> GreedyRunner:
        fast = FastDecoder.from_transformers(model, max_len=64, max_step_tokens=4)
        return GreedyRunner(fast, prefill_chunk=16)

    target = runner(random_transformers_model("gemma-4-tiny", cpu, 0))
    draft_model = random_draft_model("gemma-4-tiny", cpu, 1)
    assert draft_model.config.num_hidden_layers == 4
    assert draft_model.config.vocab_size == target.model.shape.vocab_size
    rows = measure_spec_graph(target, runner(draft_model), list(range(20)), 3, use_graph=False)
    assert [row["k"] for row in rows] == [1, 2, 3]
    for row in rows:
        assert row["step_ms"] > 0 and row["decode_ms"] > 0 and row["draft_decode_ms"] > 0
        assert row["ratio"] == row["step_ms"] / row["decode_ms"]
        assert row["speedup_all_accepted"] == pytest.approx((row["k"] + 1) / row["ratio"])
        assert set(row["speedup_at_acceptance"]) == {"0.5", "0.7", "0.9"}
