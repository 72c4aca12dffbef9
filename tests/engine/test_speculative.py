"""Speculative decoding returns exactly the target's greedy tokens, for any drafter and K."""

from __future__ import annotations

from typing import Any

import pytest
from tests.engine.fast.test_model import NEW_TOKENS, reference_greedy
from tests.fixtures.fast_engine import tiny_gemma

from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import GreedyRunner
from swarmlab.engine.speculative import (
    DraftMismatchError,
    ModelDrafter,
    NgramDrafter,
    check_draft_vocabulary,
    speculative_generate,
)

KS = (1, 3, 6)


def runner_for(model: Any, widths: tuple[int, ...] = ()) -> GreedyRunner:
    fast = FastDecoder.from_transformers(model, max_len=128, max_step_tokens=8)
    return GreedyRunner(fast, prefill_chunk=12, verify_widths=widths)


@pytest.fixture(scope="module")
def target(tiny_target: Any) -> GreedyRunner:
    return runner_for(tiny_target, tuple(k + 1 for k in KS))


@pytest.fixture(scope="module")
def expected(tiny_target: Any, test_prompts: list[list[int]]) -> list[list[int]]:
    return [reference_greedy(tiny_target, prompt, NEW_TOKENS) for prompt in test_prompts]


def test_ngram_drafter_proposes_what_followed_the_latest_match() -> None:
    drafter = NgramDrafter(max_ngram=2)
    assert drafter.propose([1, 2, 3, 9, 1, 2, 4, 7, 1, 2], 3) == [4, 7, 1]
    assert drafter.propose([1, 2, 3, 9, 2], 2) == [3, 9]
    assert drafter.propose([5, 6], 3) == [6, 6, 6]


@pytest.mark.parametrize("k", KS)
def test_prompt_lookup_decoding_equals_greedy(
    target: GreedyRunner, test_prompts: list[list[int]], expected: list[list[int]], k: int
) -> None:
    for prompt, greedy in zip(test_prompts, expected, strict=True):
        tokens, stats = speculative_generate(target, NgramDrafter(), prompt, NEW_TOKENS, k)
        assert tokens == greedy
        assert stats.steps <= NEW_TOKENS


@pytest.mark.parametrize("k", KS)
def test_draft_model_decoding_equals_greedy(
    target: GreedyRunner,
    tiny_draft: Any,
    test_prompts: list[list[int]],
    expected: list[list[int]],
    k: int,
) -> None:
    drafter = ModelDrafter(runner_for(tiny_draft))
    for prompt, greedy in zip(test_prompts, expected, strict=True):
        tokens, _ = speculative_generate(target, drafter, prompt, NEW_TOKENS, k)
        assert tokens == greedy


def test_a_draft_identical_to_the_target_is_always_accepted(
    target: GreedyRunner, test_prompts: list[list[int]], expected: list[list[int]]
) -> None:
    drafter = ModelDrafter(runner_for(tiny_gemma(seed=1)))
    tokens, stats = speculative_generate(target, drafter, test_prompts[4], NEW_TOKENS, 6)
    assert tokens == expected[4]
    assert stats.accepted == stats.drafted
    assert stats.tokens_per_step == 7.0


def test_stop_ids_end_speculative_generation(
    target: GreedyRunner, test_prompts: list[list[int]], expected: list[list[int]]
) -> None:
    stop = expected[3][12]
    cut = expected[3].index(stop) + 1
    tokens, _ = speculative_generate(target, NgramDrafter(), test_prompts[3], NEW_TOKENS, 3, {stop})
    assert tokens == expected[3][:cut]


def test_a_draft_with_another_vocabulary_is_refused(target: GreedyRunner) -> None:
    draft = runner_for(tiny_gemma(seed=3, layers=3, hidden=32, shared=0, vocab=64))
    with pytest.raises(DraftMismatchError, match="ngram"):
        check_draft_vocabulary(target, draft)
