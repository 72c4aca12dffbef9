"""The one-graph speculative step returns exactly the target's greedy tokens (CPU runs its body
eagerly; the CUDA test checks the captured graph against that)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.engine.fast.test_model import NEW_TOKENS, reference_greedy
from tests.fixtures.fast_engine import tiny_gemma

from swarmlab.engine.backend import BackendOptions, create_backend
from swarmlab.engine.fast.backend import FastBackend
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import EmptyPromptError, GreedyRunner
from swarmlab.engine.fast.spec_graph import (
    GraphSpeculator,
    LookupSpeculator,
    SpeculatorSetupError,
    lookup_drafts,
)
from swarmlab.engine.speculative import (
    DraftMismatchError,
    ModelDrafter,
    NgramDrafter,
    speculative_generate,
)

KS = (1, 3, 6)


def runner_for(model: Any, max_step_tokens: int = 8) -> GreedyRunner:
    fast = FastDecoder.from_transformers(model, max_len=128, max_step_tokens=max_step_tokens)
    return GreedyRunner(fast, prefill_chunk=12, verify_widths=tuple(k + 1 for k in KS))


@pytest.fixture(scope="module")
def target(tiny_target: Any) -> GreedyRunner:
    return runner_for(tiny_target)


@pytest.fixture(scope="module")
def draft(tiny_draft: Any) -> GreedyRunner:
    return runner_for(tiny_draft)


@pytest.fixture(scope="module")
def twin() -> GreedyRunner:
    """A draft with the target's own weights: every draft is accepted."""
    return runner_for(tiny_gemma(seed=1))


@pytest.fixture(scope="module")
def expected(tiny_target: Any, test_prompts: list[list[int]]) -> list[list[int]]:
    return [reference_greedy(tiny_target, prompt, NEW_TOKENS) for prompt in test_prompts]


@pytest.mark.parametrize("k", KS)
def test_draft_model_step_equals_greedy(
    target: GreedyRunner,
    draft: GreedyRunner,
    test_prompts: list[list[int]],
    expected: list[list[int]],
    k: int,
) -> None:
    """Prompts from 1 token to several sliding windows (8) long."""
    speculator = GraphSpeculator(target, draft, k)
    for prompt, greedy in zip(test_prompts, expected, strict=True):
        tokens, stats = speculator.generate(prompt, NEW_TOKENS)
        assert tokens == greedy
        assert 1 <= stats.steps <= NEW_TOKENS - 1


@pytest.mark.parametrize("k", KS)
def test_acceptance_counts_equal_the_host_loops(
    target: GreedyRunner,
    draft: GreedyRunner,
    tiny_draft: Any,
    test_prompts: list[list[int]],
    k: int,
) -> None:
    """Same drafts, same verification: the device counts what the host loop counts."""
    speculator = GraphSpeculator(target, draft, k)
    drafter = ModelDrafter(runner_for(tiny_draft))
    for prompt in test_prompts:
        _, ours = speculator.generate(prompt, NEW_TOKENS)
        _, theirs = speculative_generate(target, drafter, prompt, NEW_TOKENS, k)
        assert ours == theirs
        assert sum(ours.accepted_at) == ours.accepted
        assert ours.accepted_at == sorted(ours.accepted_at, reverse=True)


def test_a_draft_identical_to_the_target_is_always_accepted(
    target: GreedyRunner,
    twin: GreedyRunner,
    test_prompts: list[list[int]],
    expected: list[list[int]],
) -> None:
    speculator = GraphSpeculator(target, twin, 6)
    for prompt, greedy in zip(test_prompts, expected, strict=True):
        tokens, stats = speculator.generate(prompt, NEW_TOKENS)
        assert tokens == greedy
        assert stats.accepted == stats.drafted
        assert stats.accepted_at == [stats.steps] * 6
        assert stats.tokens_per_step == 7.0


@pytest.mark.parametrize("drafter", ["twin", "draft"])
def test_stop_ids_cut_inside_an_accepted_run(
    request: pytest.FixtureRequest,
    target: GreedyRunner,
    test_prompts: list[list[int]],
    expected: list[list[int]],
    drafter: str,
) -> None:
    """With the twin, step 1 keeps tokens 1-7 and step 2 tokens 8-14: a stop at 10 or 12 ends
    generation in the middle of an accepted run."""
    speculator = GraphSpeculator(target, request.getfixturevalue(drafter), 6)
    greedy = expected[3]
    for index in (0, 3, 10, 12, NEW_TOKENS - 1):
        stop = greedy[index]
        cut = greedy.index(stop) + 1
        tokens, _ = speculator.generate(test_prompts[3], NEW_TOKENS, {stop, 10_000, -1})
        assert tokens == greedy[:cut]


@pytest.mark.parametrize("k", KS)
def test_max_tokens_cut_inside_an_accepted_run(
    target: GreedyRunner,
    twin: GreedyRunner,
    test_prompts: list[list[int]],
    expected: list[list[int]],
    k: int,
) -> None:
    speculator = GraphSpeculator(target, twin, k)
    for max_tokens in range(NEW_TOKENS + 1):
        tokens, _ = speculator.generate(test_prompts[4], max_tokens)
        assert tokens == expected[4][:max_tokens]


def test_steps_after_the_end_keep_nothing(
    target: GreedyRunner,
    twin: GreedyRunner,
    test_prompts: list[list[int]],
    expected: list[list[int]],
) -> None:
    """A finished request's state is frozen on the device, so replaying past the end is safe."""
    speculator = GraphSpeculator(target, twin, 3)
    speculator.start(test_prompts[2], 10)
    speculator.run_steps(12)
    assert int(speculator.count.item()) == 10
    assert int(speculator.position.item()) == len(test_prompts[2]) + 9
    assert speculator.history[:10].tolist() == expected[2][:10]
    assert speculator.stats().steps == 3


def test_requests_that_end_at_once(target: GreedyRunner, draft: GreedyRunner) -> None:
    speculator = GraphSpeculator(target, draft, 3)
    first = target.generate([5, 6, 7], 1)
    assert speculator.generate([5, 6, 7], 0) == ([], speculator.generate([5], 0)[1])
    assert speculator.generate([5, 6, 7], 1)[0] == first
    tokens, stats = speculator.generate([5, 6, 7], 8, set(first))
    assert (tokens, stats.steps) == (first, 0)
    with pytest.raises(EmptyPromptError):
        speculator.generate([], 4)


def test_unusable_pairs_are_refused(
    target: GreedyRunner, tiny_target: Any, tiny_draft: Any
) -> None:
    """Ring of 16 slots (window 8 + 2, rounded up to 8): too small for window + K + 1 at K=8."""
    wide_target = runner_for(tiny_target, max_step_tokens=16)
    narrow = runner_for(tiny_draft, max_step_tokens=2)
    GraphSpeculator(wide_target, narrow, 7)
    with pytest.raises(SpeculatorSetupError, match=r"draft model.*max_step_tokens >= 9"):
        GraphSpeculator(wide_target, narrow, 8)
    with pytest.raises(SpeculatorSetupError, match="at least 1"):
        GraphSpeculator(target, narrow, 0)
    other = runner_for(tiny_gemma(seed=3, layers=3, hidden=32, shared=0, vocab=64))
    with pytest.raises(DraftMismatchError, match="ngram"):
        GraphSpeculator(target, other, 1)


@pytest.mark.parametrize(("max_ngram", "min_ngram"), [(3, 1), (1, 1), (4, 2)])
def test_the_device_lookup_proposes_what_the_host_lookup_does(
    max_ngram: int, min_ngram: int
) -> None:
    """Random contexts over small vocabularies (many partial and overlapping matches, contexts
    shorter than the n-grams), in a buffer whose positions past the context hold junk."""
    drafter = NgramDrafter(max_ngram, min_ngram)
    lengths = tuple(range(max_ngram, min_ngram - 1, -1))
    rng = random.Random(max_ngram * 10 + min_ngram)
    for _ in range(400):
        vocab, size, k = rng.choice((2, 3, 7)), rng.randint(1, 30), rng.randint(1, 8)
        context = [rng.randrange(vocab) for _ in range(size)]
        junk = [rng.randrange(vocab) for _ in range(k + max_ngram + 1)]
        tokens = torch.tensor(context + junk)
        last = torch.tensor([size - 1])
        proposed = lookup_drafts(tokens, last, k, lengths).tolist()
        assert proposed == drafter.propose(context, k), (context, k)


@pytest.mark.parametrize("k", KS)
def test_lookup_step_equals_greedy_and_counts_what_the_host_loop_counts(
    target: GreedyRunner,
    test_prompts: list[list[int]],
    expected: list[list[int]],
    k: int,
) -> None:
    """Same drafts, same verification: the device step keeps the greedy tokens and accepts
    exactly the drafts the host loop with `NgramDrafter` accepts."""
    speculator = LookupSpeculator(target, k)
    accepted = 0
    for prompt, greedy in zip(test_prompts, expected, strict=True):
        tokens, ours = speculator.generate(prompt, NEW_TOKENS)
        _, theirs = speculative_generate(target, NgramDrafter(), prompt, NEW_TOKENS, k)
        assert tokens == greedy
        assert ours == theirs
        accepted += ours.accepted
    # The repeated prompt and the tiny model's own loops give the lookup hits to verify.
    assert accepted > 0


def test_lookup_step_cuts_at_stops_and_max_tokens(
    target: GreedyRunner, test_prompts: list[list[int]], expected: list[list[int]]
) -> None:
    speculator = LookupSpeculator(target, 4, drafter=NgramDrafter(2, 1))
    greedy = expected[5]
    for max_tokens in range(NEW_TOKENS + 1):
        assert speculator.generate(test_prompts[5], max_tokens)[0] == greedy[:max_tokens]
    for index in (0, 5, NEW_TOKENS - 1):
        cut = greedy.index(greedy[index]) + 1
        tokens, _ = speculator.generate(test_prompts[5], NEW_TOKENS, {greedy[index]})
        assert tokens == greedy[:cut]


def test_lookup_speculator_refuses_empty_ngram_ranges(target: GreedyRunner) -> None:
    with pytest.raises(SpeculatorSetupError, match="min_ngram <= max_ngram"):
        LookupSpeculator(target, 2, drafter=NgramDrafter(1, 2))
    with pytest.raises(SpeculatorSetupError, match="at least 1"):
        LookupSpeculator(target, 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_captured_step_gives_the_eager_tokens() -> None:
    def cuda_runner(model: Any) -> GreedyRunner:
        fast = FastDecoder.from_transformers(model.to("cuda"), max_len=256, max_step_tokens=16)
        return GreedyRunner(fast, prefill_chunk=16)

    target = cuda_runner(tiny_gemma(seed=1))
    draft = cuda_runner(tiny_gemma(seed=2, layers=3, hidden=32, shared=0))
    prompt = list(range(3, 40))
    greedy = target.generate(prompt, 48)
    for k in (1, 4):
        eager = GraphSpeculator(target, draft, k, use_graph=False).generate(prompt, 48)
        graphed = GraphSpeculator(target, draft, k, use_graph=True).generate(prompt, 48)
        assert graphed == eager
        assert graphed[0] == greedy


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_fast_backend_on_cuda_speculates_in_one_graph(tiny_model_dir: Path) -> None:
    """float32 on the GPU (no torch.compile, as in test_gpu.py): a draft checkpoint takes the
    one-graph path by default, and its tokens equal the reference backend's."""
    options = BackendOptions(tiny_model_dir, device="cuda", dtype="float32", prefill_chunk=16)
    reference = create_backend("reference", options)
    env = {
        "SWARMLAB_FAST_KERNELS": "torch",
        "SWARMLAB_FAST_COMPILE": "0",
        "SWARMLAB_FAST_DRAFT": str(tiny_model_dir),
    }
    fast = FastBackend.from_options(options, env)
    assert fast.speculator is not None
    prompt = [2, 45, 322, 81, 84, 266, 273, 81, 73] * 5
    assert fast.generate(prompt, 32, None) == reference.generate(prompt, 32, None)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# torch.compile on the GPU machine's torch 2.11 warns from its own use of torch.jit.
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("compile_step", [False, True])
def test_the_captured_lookup_step_gives_the_eager_tokens(compile_step: bool) -> None:
    fast = FastDecoder.from_transformers(
        tiny_gemma(seed=1).to("cuda"), max_len=256, max_step_tokens=16
    )
    target = GreedyRunner(fast, prefill_chunk=16)
    prompt = [5, 6, 7, 8, 9] * 6 + list(range(3, 20))
    greedy = target.generate(prompt, 48)
    for k in (1, 4):
        eager = LookupSpeculator(target, k, use_graph=False).generate(prompt, 48)
        graphed = LookupSpeculator(target, k, compile_step=compile_step).generate(prompt, 48)
        assert graphed == eager
        assert graphed[0] == greedy
