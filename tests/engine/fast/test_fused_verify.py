"""The fused verify step (Triton) against the unfused fast decoder's verify forward.

As in test_fused.py, the kernels run under Triton's interpreter on a machine without CUDA and
compiled on the GPU machine. The step must give `FastDecoder.forward`'s greedy tokens and write
the same KV-cache entries and ring positions, and speculative decoding through a fused runner
(host loop and one-graph step) must stay plain greedy decoding.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.engine.fast.test_model import reference_greedy
from tests.fixtures.fast_engine import TINY_WINDOW

from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import FusedSettings, GreedyRunner
from swarmlab.engine.speculative import ModelDrafter, NgramDrafter, speculative_generate

pytest.importorskip("triton")
CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
MAX_STEP = 9
NEW_TOKENS = 8


@pytest.fixture(scope="module", autouse=True)
def kernels() -> None:
    """Compiled kernels on CUDA; on CPU, tests/conftest.py selects Triton's interpreter."""
    from swarmlab.engine.fast import fused_kernels

    if not CUDA and not fused_kernels.INTERPRETED:
        pytest.skip("no CUDA, and triton was imported before TRITON_INTERPRET=1 was set")


def _decoder(model: Any, max_step_tokens: int = MAX_STEP) -> FastDecoder:
    on_device = copy.deepcopy(model).to(DEVICE) if CUDA else model
    return FastDecoder.from_transformers(on_device, max_len=96, max_step_tokens=max_step_tokens)


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    """One prompt inside the sliding window, one three windows long (the ring wraps)."""
    generator = torch.Generator().manual_seed(5)
    return [
        torch.randint(0, 128, (n,), generator=generator).tolist() for n in (3, 3 * TINY_WINDOW + 2)
    ]


def _prefill(decoder: FastDecoder, prompt: list[int]) -> None:
    decoder.cache.reset()
    positions = torch.arange(len(prompt), device=DEVICE)
    decoder.hidden(torch.tensor(prompt, device=DEVICE), positions, last_only=True)


def _cache_snapshot(decoder: FastDecoder) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    cache = decoder.cache
    return {layer: (cache.keys[layer].clone(), cache.values[layer].clone()) for layer in cache.keys}


def _steps(width: int, start: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Three verification steps as speculation makes them: random drafts, each step starting
    where the previous one's accepted prefix ended (1, then all, then some)."""
    generator = torch.Generator().manual_seed(width)
    steps, position = [], start
    for advance in (1, width, max(1, width // 2)):
        ids = torch.randint(0, 128, (width,), generator=generator, device="cpu")
        positions = torch.arange(position, position + width)
        steps.append((ids.to(DEVICE), positions.to(DEVICE)))
        position += advance
    return steps


ONE_SPLIT = {"sliding_attention": 1, "full_attention": 1}
MANY_SPLITS = {"sliding_attention": 4, "full_attention": 8}


@pytest.mark.parametrize(
    (
        "width",
        "splits",
        "row_values",
        "int8",
        "cache_hints",
        "launches",
        "tensor_cores",
        "cut",
        "screen",
    ),
    [
        (2, None, 0, False, True, True, False, 1, False),
        (4, ONE_SPLIT, 64, False, False, False, True, 1, False),
        (9, MANY_SPLITS, 256, False, True, True, True, 1, False),
        (5, None, 0, True, True, False, True, 1, False),
        (3, None, 0, True, True, True, False, 1, False),
        (5, None, 0, False, True, True, True, 2, False),
        (4, None, 0, True, True, True, True, 4, False),
        (5, None, 0, False, True, True, True, 1, True),
        (3, None, 0, False, True, True, False, 1, True),
    ],
    ids=[
        "w2-fma",
        "w4-one-split-query-chunks-counters",
        "w9-many-splits-query-chunks-merges-of-8-dimensions",
        "w5-int8-counters",
        "w3-int8-fma",
        "w5-columns-split-2",
        "w4-int8-columns-split-4",
        "w5-screened-lm-head",
        "w3-screened-lm-head-fma",
    ],
)
@torch.inference_mode()
def test_fused_verify_equals_the_unfused_forward(
    tiny_target: Any,
    prompts: list[list[int]],
    width: int,
    splits: dict[str, int] | None,
    row_values: int,
    int8: bool,
    cache_hints: bool,
    launches: bool,
    tensor_cores: bool,
    cut: int,
    screen: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tokens, every cache entry, the ring's position map and the kept hidden states equal
    the unfused step's after each of three steps. `row_values` (the attention rows x head
    dims of a program) divides attention's queries into several programs; with int8 the
    mat-mats read `Int8Linear` codes and scales; without `launches` the mat-mats' last programs
    finalize and attention's last split merges (behind counters) instead of launches of their
    own (at W = 9, several programs a head); without `tensor_cores` the mat-mats multiply in float32 per column (no `tl.dot`);
    with `cut` > 1 every mat-mat that can (gate+up, and o and down, whose finalize launches add
    the partials) splits its columns `cut` ways; with `screen` the lm_head reads int8 codes
    of its rows first (`screen_weights`), then each column's candidate rows, in programs of 32
    rows (several a column)."""
    from swarmlab.engine.fast import fused, fused_verify
    from swarmlab.engine.fast.fused import screen_weights
    from swarmlab.engine.fast.fused_verify import FusedVerifyStep
    from swarmlab.engine.quant import Int8Linear, swap_linears

    if row_values:
        monkeypatch.setattr(fused_verify, "ATTENTION_ROW_VALUES", row_values)
        # The finish kernel then reduces the lm_head's block maxima over several rounds.
        monkeypatch.setattr(fused_verify, "FINISH_BLOCK", 2)
    decoder = _decoder(tiny_target)
    decoder.keep_hidden()
    if int8:
        assert swap_linears(decoder, Int8Linear, use_kernel=False) > 0
    if screen:
        monkeypatch.setattr(fused, "SCREEN_CHUNK", 32)
    step = FusedVerifyStep(
        decoder,
        width,
        splits=splits,
        cache_hints=cache_hints,
        finalize_launch=launches,
        merge_launch=launches,
        # (each merge program writing 8 of a head's 16 or 32 dimensions; whole heads else)
        merge_dims=8 if width == 9 else None,
        tensor_cores=tensor_cores,
        screen=screen_weights(decoder.lm_head.weight) if screen else None,
    )
    if cut > 1:
        from swarmlab.engine.fast.fused import MatvecConfig

        cuts = {
            launch.key: asdict(MatvecConfig(16, 16, 4, 3, split=cut))
            for launch in step.matmats
            if launch.splittable and launch.k % (cut * 16) == 0
        }
        # gate+up, down and o of every layer (the PLE projection's 8 columns are too few to
        # cut into tiles of 16).
        assert step.use_configs(cuts) == 3 * len(decoder.shape.layer_types)
    if row_values:
        assert fused_verify.query_chunks(width, 2, 16)[0] > 1
    # q/k prep, attention, 6 mat-mats, (finalize_launch) 3 finalizers and (merge_launch, on
    # layers of more than one split) a merge a layer; the PLE model projection (and its
    # finalizer), lm_head, finish and the copy of the kept states. (A split gate+up's entry
    # launches its reduce kernel too.)
    per_layer, outside = (11, 5) if launches else (8, 4)
    kinds = decoder.shape.layer_types
    merges = sum(step.splits[kind] > 1 for kind in kinds) if launches else 0
    # (and the screened lm_head's exact pass)
    assert len(step.launches) == per_layer * len(kinds) + merges + outside + screen
    hidden_out, hidden_positions = decoder.hidden_out, decoder.hidden_positions
    assert hidden_out is not None and hidden_positions is not None
    for prompt in prompts:
        steps = _steps(width, len(prompt))
        _prefill(decoder, prompt)
        expected = []
        for ids, positions in steps:
            expected.append(decoder(ids, positions).tolist())
        expected_cache = _cache_snapshot(decoder)
        expected_slots = decoder.cache.slot_positions.clone()
        expected_hidden = hidden_out[:width].clone()

        _prefill(decoder, prompt)
        got = []
        for ids, positions in steps:
            step.ids.copy_(ids)
            step.positions.copy_(positions)
            step()
            got.append(step.out.tolist())
            if screen:
                # Each column's exact pass computed a few of the 128 rows, and reset its floor.
                seen = step.seen.view(width, -1).sum(dim=1)
                assert bool(((seen >= 1) & (seen < 32)).all()), seen.tolist()
                assert bool((step.floor == float("-inf")).all())
        assert got == expected
        # Float32 summation order: compiled on an H200, one int8 value in 768 was 1.03e-5
        # from the unfused one (both near zero), so 2e-5 there; products summed per column
        # (no tensor cores) move the deep layers' keys by a few 1e-5 on this sensitive model.
        close = (
            {"rtol": 1e-4, "atol": 2e-5 if int8 and CUDA else 1e-5}
            if tensor_cores
            else {"rtol": 1e-3, "atol": 5e-5}
        )
        close_hidden = {"rtol": 1e-4 if tensor_cores else 1e-3, "atol": 1e-4}
        for layer, (keys, values) in _cache_snapshot(decoder).items():
            torch.testing.assert_close(keys, expected_cache[layer][0], **close)
            torch.testing.assert_close(values, expected_cache[layer][1], **close)
        assert torch.equal(decoder.cache.slot_positions, expected_slots)
        torch.testing.assert_close(hidden_out[:width], expected_hidden, **close_hidden)
        assert hidden_positions[:width].tolist() == steps[-1][1].tolist()
        assert (hidden_positions[width:] == -1).all()


def test_unsupported_widths_and_tiles_are_refused(tiny_target: Any) -> None:
    from swarmlab.engine.fast.fused import FusedUnsupportedError
    from swarmlab.engine.fast.fused_verify import FusedVerifyStep

    decoder = _decoder(tiny_target, max_step_tokens=4)
    with pytest.raises(FusedUnsupportedError, match="max_step_tokens >= 5"):
        FusedVerifyStep(decoder, 5)
    with pytest.raises(FusedUnsupportedError, match="1 to 16 tokens"):
        FusedVerifyStep(_decoder(tiny_target, max_step_tokens=20), 17)
    step = FusedVerifyStep(decoder, 3)
    key = step.matmats[0].key
    # Keys name the padded width, not the width: tiles tuned at W = 2 serve W = 3.
    assert "W=" not in key and "WP=16" in key
    assert [m.key for m in FusedVerifyStep(decoder, 2).matmats] == [m.key for m in step.matmats]
    with pytest.raises(ValueError, match="at least 16 rows"):
        step.use_configs({key: {"block_n": 8, "block_k": 64, "warps": 4}})
    with pytest.raises(ValueError, match="one-wave"):
        step.use_configs({key: {"block_n": 16, "block_k": 64, "warps": 4, "programs": 132}})
    # The per-layer-embedding projection's finalizer adds no delta: its columns never split.
    with pytest.raises(ValueError, match="cannot split"):
        step.use_configs({key: {"block_n": 16, "block_k": 16, "warps": 4, "split": 2}})
    assert step.use_configs({key: {"block_n": 32, "block_k": 16, "warps": 4}}) == 1
    assert step.configs()[key]["block_n"] == 32


def test_int4_weights_are_refused(tiny_target: Any) -> None:
    from swarmlab.engine.fast.fused import FusedUnsupportedError
    from swarmlab.engine.fast.fused_verify import FusedVerifyStep
    from swarmlab.engine.quant import Int4Linear, swap_linears

    decoder = _decoder(tiny_target)
    swap_linears(decoder, partial(Int4Linear, group_size=8), use_kernel=False)
    with pytest.raises(FusedUnsupportedError, match="plain or int8 weights"):
        FusedVerifyStep(decoder, 2)


@pytest.fixture(scope="module")
def fused_runner(tiny_target: Any) -> GreedyRunner:
    """A fused runner with fused verify steps for K = 1 and 3, and one width (10) past its
    `max_step_tokens`, which runs unfused."""
    return GreedyRunner(
        _decoder(tiny_target), prefill_chunk=16, fused=FusedSettings(), verify_widths=[2, 4, 10]
    )


@pytest.fixture(scope="module")
def expected(tiny_target: Any, prompts: list[list[int]]) -> list[int]:
    """Greedy tokens after the long prompt (speculation's steps then wrap the ring)."""
    return reference_greedy(tiny_target, prompts[1], NEW_TOKENS)


def test_the_runner_verifies_with_the_fused_step_where_it_can(
    fused_runner: GreedyRunner, prompts: list[list[int]]
) -> None:
    assert sorted(fused_runner.fused_verify) == [2, 4]
    assert "max_step_tokens >= 10" in fused_runner.verify_fallbacks[10]
    # The unfused width-10 step still verifies (a wide step), from the same prefill.
    prompt = prompts[1]
    first = int(fused_runner.prefill(prompt))
    tokens = [first, *range(9)]
    wide = fused_runner.verify(tokens, len(prompt))
    fused_runner.prefill(prompt)
    assert fused_runner.verify(tokens[:4], len(prompt)) == wide[:4]


@pytest.mark.parametrize(("k", "drafter"), [(1, "ngram"), (3, "ngram"), (3, "model")])
def test_speculation_through_the_fused_runner_is_plain_greedy(
    fused_runner: GreedyRunner,
    tiny_draft: Any,
    prompts: list[list[int]],
    expected: list[int],
    k: int,
    drafter: str,
) -> None:
    source = (
        NgramDrafter()
        if drafter == "ngram"
        else ModelDrafter(GreedyRunner(_decoder(tiny_draft), prefill_chunk=16))
    )
    tokens, stats = speculative_generate(fused_runner, source, prompts[1], NEW_TOKENS, k)
    assert tokens == expected
    assert stats.steps >= 1


def test_a_screened_fused_runner_shares_its_screen_and_stays_greedy(
    tiny_target: Any, prompts: list[list[int]], expected: list[int]
) -> None:
    """With `screen_head` the decode step and the verify steps read one int8 screen of the
    lm_head, and speculation through them is still plain greedy decoding."""
    runner = GreedyRunner(
        _decoder(tiny_target),
        prefill_chunk=16,
        fused=FusedSettings(screen_head=True),
        verify_widths=[4],
    )
    assert runner.fused is not None and runner.fused.screen is not None
    assert runner.fused_verify[4].screen is runner.fused.screen
    tokens, stats = speculative_generate(runner, NgramDrafter(), prompts[1], NEW_TOKENS, 3)
    assert tokens == expected
    assert stats.steps >= 1
    from swarmlab.engine.fast.fused import FusedUnsupportedError
    from swarmlab.engine.fast.fused_verify import FusedVerifyStep
    from swarmlab.engine.quant import Int8Linear, swap_linears

    int8 = _decoder(tiny_target)
    swap_linears(int8, Int8Linear, use_kernel=False)
    with pytest.raises(FusedUnsupportedError, match="int8 already"):
        FusedVerifyStep(int8, 4, screen=runner.fused.screen)


@pytest.mark.parametrize("k", [1, 3])
def test_the_one_graph_speculator_verifies_with_the_fused_step(
    fused_runner: GreedyRunner,
    tiny_draft: Any,
    prompts: list[list[int]],
    expected: list[int],
    k: int,
) -> None:
    from swarmlab.engine.fast.spec_graph import GraphSpeculator

    draft = GreedyRunner(_decoder(tiny_draft), prefill_chunk=16)
    speculator = GraphSpeculator(fused_runner, draft, k)
    assert speculator._target_forward is not fused_runner.step_forward
    tokens, _ = speculator.generate(prompts[1], NEW_TOKENS)
    assert tokens == expected


def test_the_assistant_speculator_reads_the_fused_steps_kept_states(
    tiny_target: Any, prompts: list[list[int]], expected: list[int]
) -> None:
    """The MTP assistant drafts from the target's final-normed states, which the fused verify
    step keeps as the unfused forward does: same drafts, so the same acceptance counts."""
    from tests.fixtures.fast_engine import tiny_assistant

    from swarmlab.engine.fast.assistant import AssistantSpeculator, MtpAssistant

    assistant_model = tiny_assistant(tiny_target.config, seed=3)
    if CUDA:
        assistant_model = assistant_model.to(DEVICE)
    found, kept = [], []
    for fused in (FusedSettings(), None):
        decoder = _decoder(tiny_target)
        decoder.keep_hidden()
        runner = GreedyRunner(decoder, prefill_chunk=16, fused=fused)
        assistant = MtpAssistant.from_transformers(assistant_model, decoder)
        speculator = AssistantSpeculator(runner, assistant, 3)
        assert sorted(runner.fused_verify) == ([4] if fused else [])
        found.append(speculator.generate(prompts[1], NEW_TOKENS))
        kept.append((decoder.hidden_out, decoder.hidden_positions))
    (tokens, stats), unfused = found
    assert tokens == expected
    assert (tokens, stats) == unfused
    # What the last verification left for the next draft.
    (states, positions), (unfused_states, unfused_positions) = kept
    assert positions is not None and torch.equal(positions, unfused_positions)
    torch.testing.assert_close(states, unfused_states, rtol=1e-4, atol=1e-4)


# On CUDA the one-graph lookup step compiles its n-gram search by default, and torch.compile
# imports torch.jit, which warns about its own deprecation (an error under pytest's settings).
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning")
def test_the_fast_backend_speculates_through_the_fused_verify_step(tiny_model_dir: Path) -> None:
    """SWARMLAB_FAST_FUSED=1 with prompt lookup: the backend's runner verifies fused, and its
    tokens equal the reference backend's (CPU under the interpreter, or CUDA)."""
    from swarmlab.engine.backend import BackendOptions, create_backend
    from swarmlab.engine.fast.backend import FastBackend

    device = "cuda" if CUDA else "cpu"
    options = BackendOptions(tiny_model_dir, device=device, dtype="float32", prefill_chunk=16)
    env = {
        "SWARMLAB_FAST_FUSED": "1",
        "SWARMLAB_FAST_DRAFT": "ngram",
        "SWARMLAB_FAST_K": "3",
        "SWARMLAB_FAST_KERNELS": "torch",
        "SWARMLAB_FAST_COMPILE": "0",
        "SWARMLAB_FAST_MAX_CONTEXT": "128",
    }
    fast = FastBackend.from_options(options, env)
    assert sorted(fast.runner.fused_verify) == [4]
    prompt = [2, 45, 322, 81, 84, 266, 273, 81, 73] * 3  # longer than the sliding window
    reference = create_backend("reference", options)
    assert fast.generate(prompt, NEW_TOKENS, None) == reference.generate(prompt, NEW_TOKENS, None)


@pytest.mark.skipif(not CUDA, reason="times captured CUDA graphs")
@torch.inference_mode()
def test_tuning_the_verify_step_keeps_a_candidate_per_shape_and_the_tokens(
    tiny_target: Any, prompts: list[list[int]]
) -> None:
    from swarmlab.engine.fast.fused_verify import FusedVerifyStep, candidate_configs

    decoder = _decoder(tiny_target)
    prompt = prompts[1]
    _prefill(decoder, prompt)
    ids, positions = _steps(5, len(prompt))[0]
    expected = decoder.forward(ids, positions)
    step = FusedVerifyStep(decoder, 5, use_pdl=True)
    step.ids.copy_(ids)
    step.positions.copy_(positions)
    report = step.tune_in_step(keys=2, replays=2)
    tuned = [key for key in report if key.startswith(tuple("0123456789"))]
    assert len(tuned) == 2 and report["step_ms_after"] > 0
    for key in tuned:
        launch = next(m for m in step.matmats if m.key == key)
        assert launch.config in candidate_configs(launch.rows, launch.k)
    # Every trial rewrote the same entries: the step still gives the forward's tokens.
    step()
    assert step.out.tolist() == expected.tolist()
