"""The benchmark's pipeline end to end on CPU with the tiny preset (numbers not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

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


@pytest.mark.slow
def test_quantized_modes_report_bytes_and_accuracy_against_bf16() -> None:
    """int4 runs after int8 but quantizes the bf16 weights, not int8's; both report their
    logits against the bf16 fast path's (on CPU the swaps take their torch path)."""
    settings = BenchSettings(
        preset="gemma-4-tiny",
        prompt_tokens=24,
        new_tokens=6,
        hf_new_tokens=2,
        max_k=1,
        modes=("int4+triton+graph", "eager", "int8+triton+graph"),
        prefill_chunk=16,
        copy_gib=0.01,
        accuracy_prompts=3,
        accuracy_tokens=20,
    )
    report = run_bench(settings, torch.device("cpu"), lambda step: None).to_json()
    modes = report["modes"]
    assert list(modes) == ["eager", "int8+triton+graph", "int4+triton+graph"]
    assert all("error" not in row for row in modes.values())
    bf16 = report["bytes_per_token"]
    assert modes["eager"]["bytes_per_token"] == bf16
    # int8: one byte a weight plus a bf16 scale a row; int4 in groups of 8 (the tiny preset's
    # smallest K): half a byte plus a bf16 scale and offset per 8 weights, one byte a weight
    assert 0.5 * bf16 < modes["int8+triton+graph"]["bytes_per_token"] < 0.6 * bf16
    assert modes["int4+triton+graph"]["bytes_per_token"] == bf16 // 2
    assert "accuracy" not in modes["eager"]
    int8, int4 = modes["int8+triton+graph"]["accuracy"], modes["int4+triton+graph"]["accuracy"]
    assert int8["prompts"] == int4["prompts"] == 3 and int8["tokens"] == 20
    assert 0 < int8["relative_logit_error"] < int4["relative_logit_error"]
    assert 0 <= int4["top1_agreement"] <= int8["top1_agreement"] <= 1


def test_fused_configs_come_from_a_bench_json_or_a_tiles_file(tmp_path: Path) -> None:
    import typer

    from swarmlab.engine.cli import _saved_fused_configs

    config = {"block_n": 4, "block_k": 512, "warps": 4, "stages": 4}
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps({"modes": {"graph": {}, "fused+graph": {"fused_configs": {"a": config}}}})
    )
    tiles = tmp_path / "tiles.json"
    tiles.write_text(json.dumps({"configs": {"b": config}, "gpu": "NVIDIA H200"}))
    assert _saved_fused_configs(bench) == {"a": config}
    assert _saved_fused_configs(tiles) == {"b": config}
    assert _saved_fused_configs(None) == {}
    unfused = tmp_path / "unfused.json"
    unfused.write_text(json.dumps({"modes": {"graph": {}}}))
    with pytest.raises(typer.BadParameter, match="holds no fused mode"):
        _saved_fused_configs(unfused)
    with pytest.raises(typer.BadParameter, match="or a tiles file"):
        _saved_fused_configs(tmp_path / "missing.json")
