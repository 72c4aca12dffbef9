"""The fast decoder against transformers' Gemma4ForCausalLM on CPU (float32, tiny models)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tests.fixtures.fast_engine import TINY_WINDOW

from swarmlab.engine.fast.config import (
    PRESETS,
    UnknownPresetError,
    UnsupportedCheckpointError,
    preset_config,
    shape_from_config,
)
from swarmlab.engine.fast.kv_cache import ContextTooLongError
from swarmlab.engine.fast.model import FastDecoder, greedy
from swarmlab.engine.fast.runner import EmptyPromptError, GreedyRunner

NEW_TOKENS = 24


def reference_greedy(model: Any, prompt: list[int], new_tokens: int) -> list[int]:
    """Plain greedy decoding: a full forward pass over the whole text for every token."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(new_tokens):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.fixture(scope="module")
def expected(tiny_target: Any, test_prompts: list[list[int]]) -> list[list[int]]:
    return [reference_greedy(tiny_target, prompt, NEW_TOKENS) for prompt in test_prompts]


@pytest.fixture(scope="module")
def fast(tiny_target: Any) -> FastDecoder:
    return FastDecoder.from_transformers(tiny_target, max_len=128, max_step_tokens=8)


# 5-token steps write straight into the 16-slot sliding ring; 40-token steps are wider than it
# and attend over the ring plus their own keys.
@pytest.mark.parametrize("step", [5, 40])
def test_logits_match_transformers_for_every_position(
    tiny_target: Any, fast: FastDecoder, test_prompts: list[list[int]], step: int
) -> None:
    assert fast.cache.ring == 16
    for prompt in test_prompts:
        with torch.no_grad():
            reference = tiny_target(torch.tensor([prompt])).logits[0]
            fast.cache.reset()
            chunks = []
            for s in range(0, len(prompt), step):
                positions = torch.arange(s, min(s + step, len(prompt)))
                chunks.append(
                    fast.logits(fast.hidden(torch.tensor(prompt[s : s + step]), positions))
                )
        torch.testing.assert_close(torch.cat(chunks), reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prefill_chunk", [3, TINY_WINDOW, 16])
def test_greedy_tokens_equal_transformers(
    fast: FastDecoder, test_prompts: list[list[int]], expected: list[list[int]], prefill_chunk: int
) -> None:
    runner = GreedyRunner(fast, prefill_chunk=prefill_chunk, sync_every=5)
    produced = [runner.generate(prompt, NEW_TOKENS) for prompt in test_prompts]
    assert produced == expected


# Chunks of 12 and 16 tokens, padded in front to 8 or 16 (narrow steps that write the ring
# directly, and wide ones that attend over ring plus their own keys), then 12 or 16 again.
@pytest.mark.parametrize("prefill_chunk", [12, 16])
def test_padded_prefill_gives_the_same_tokens(
    fast: FastDecoder,
    test_prompts: list[list[int]],
    expected: list[list[int]],
    prefill_chunk: int,
) -> None:
    runner = GreedyRunner(fast, prefill_chunk=prefill_chunk, sync_every=5, pad_prefill=True)
    assert list(runner._prefill_steps) == ([8, 12] if prefill_chunk == 12 else [8, 16])
    produced = [runner.generate(prompt, NEW_TOKENS) for prompt in test_prompts]
    assert produced == expected


def test_generation_stops_after_the_first_stop_id(
    fast: FastDecoder, test_prompts: list[list[int]], expected: list[list[int]]
) -> None:
    runner = GreedyRunner(fast, prefill_chunk=8)
    prompt, full = test_prompts[3], expected[3]
    stop = full[10]
    cut = full.index(stop) + 1
    assert runner.generate(prompt, NEW_TOKENS, stop_ids={stop}) == full[:cut]
    assert runner.generate(prompt, 4) == full[:4]
    assert runner.generate(prompt, 0) == []


def test_requests_longer_than_the_cache_are_refused(fast: FastDecoder) -> None:
    runner = GreedyRunner(fast, prefill_chunk=8)
    with pytest.raises(ContextTooLongError, match="max-context"):
        runner.generate([1] * 100, 29)
    with pytest.raises(EmptyPromptError):
        runner.generate([], 4)


def test_a_prefill_chunk_must_hold_a_token(fast: FastDecoder) -> None:
    with pytest.raises(ValueError, match="prefill_chunk"):
        GreedyRunner(fast, prefill_chunk=0)


def test_shared_kv_layers_read_the_last_owner_of_their_type(tiny_target: Any) -> None:
    shape = shape_from_config(tiny_target.config)
    # layers: s s g s | s g, the last two reuse layer 3 (sliding) and layer 2 (global)
    assert shape.kv_source == (0, 1, 2, 3, 3, 2)
    assert shape.attention["full_attention"].head_dim == 32
    assert shape.attention["full_attention"].k_eq_v


def test_e4b_preset_has_the_published_shape() -> None:
    shape = shape_from_config(preset_config("gemma-4-e4b"))
    assert shape.num_layers == 42
    assert shape.layer_types.count("full_attention") == 7
    assert sum(shape.owns_cache(i) for i in range(42)) == 24
    assert shape.attention["full_attention"].head_dim == 512
    assert "gemma-4-e4b" in PRESETS


def test_unknown_presets_and_unsupported_configs_are_refused(tiny_target: Any) -> None:
    with pytest.raises(UnknownPresetError, match="gemma-4-e4b"):
        preset_config("gemma-5")
    moe = tiny_target.config.to_dict() | {"enable_moe_block": True}
    with pytest.raises(UnsupportedCheckpointError, match="reference backend"):
        shape_from_config(type(tiny_target.config)(**moe))


def test_two_stage_greedy_is_argmax_with_first_index_on_ties() -> None:
    logits = torch.randn(3, 1024)
    logits[1, 700] = logits[1, 5] = 50.0  # a tie in different blocks: the first index wins
    logits[2, 9] = logits[2, 10] = 50.0  # a tie within one block
    assert (
        greedy(logits, blocks=8).tolist()
        == torch.argmax(logits, dim=-1).tolist()
        == [
            int(logits[0].argmax()),
            5,
            9,
        ]
    )
    assert (
        greedy(logits[:, :1000], blocks=8).tolist()
        == torch.argmax(logits[:, :1000], dim=-1).tolist()
    )
