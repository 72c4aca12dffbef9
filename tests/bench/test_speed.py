"""Speed metrics from the timed rows: TPS, latency percentiles, the harness's own gap."""

from __future__ import annotations

import pytest

from swarmlab.bench.speed import chat_payload, percentile, speed_metrics


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 99) == pytest.approx(3.97)
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) == 0.0


def test_metrics_follow_the_contract() -> None:
    rows = [
        {"latency_s": 1.0, "completion_tokens": 512, "prompt_tokens": 100},
        {"latency_s": 3.0, "completion_tokens": 512, "prompt_tokens": 60},
    ]
    metrics = speed_metrics(rows, duration_s=4.5, output_len=512, warmup=4)
    assert metrics["tps"] == pytest.approx(1024 / 4.5)
    assert metrics["output_tps"] == metrics["tps"]
    assert metrics["total_tps"] == pytest.approx((1024 + 160) / 4.5)
    assert metrics["mean_e2e_latency_ms"] == pytest.approx(2000)
    assert metrics["p99_e2e_latency_ms"] == pytest.approx(2980)
    assert metrics["harness_gap_s"] == pytest.approx(0.5)
    assert (metrics["completed"], metrics["num_prompts"], metrics["warmup"]) == (2, 2, 4)


def test_timed_request_is_greedy_fixed_length_non_streaming() -> None:
    payload = chat_payload("m", "hi", 512)
    assert payload["max_tokens"] == 512
    assert payload["ignore_eos"] is True
    assert payload["stream"] is False
    assert payload["temperature"] == 0
    assert payload["messages"] == [{"role": "user", "content": "hi"}]
