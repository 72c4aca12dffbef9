"""The fused decode step (Triton) against the unfused fast decoder and transformers.

On a machine without CUDA the kernels run under Triton's interpreter (numpy, float32); on the
GPU machine the same tests run the compiled kernels on CUDA. Either way the fused step must
produce the unfused step's greedy tokens, logit maxima and KV-cache contents, and generation
through it must equal transformers' plain greedy decoding.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from tests.engine.fast.test_model import reference_greedy
from tests.fixtures.fast_engine import TINY_WINDOW

from swarmlab.engine.fast.backend import FastOptionError, FastOptions
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import FusedSettings, GreedyRunner
from swarmlab.engine.speculative import ModelDrafter, speculative_generate

pytest.importorskip("triton")
CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
STEPS = 10


@pytest.fixture(scope="module", autouse=True)
def kernels() -> None:
    """Compiled kernels on CUDA; on CPU, tests/conftest.py selects Triton's interpreter."""
    from swarmlab.engine.fast import fused_kernels

    if not CUDA and not fused_kernels.INTERPRETED:
        pytest.skip("no CUDA, and triton was imported before TRITON_INTERPRET=1 was set")


def _decoder(model: Any) -> FastDecoder:
    on_device = copy.deepcopy(model).to(DEVICE) if CUDA else model
    return FastDecoder.from_transformers(on_device, max_len=96, max_step_tokens=8)


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    """One prompt inside the sliding window, one three windows long."""
    generator = torch.Generator().manual_seed(11)
    return [
        torch.randint(0, 128, (n,), generator=generator).tolist() for n in (3, 3 * TINY_WINDOW + 2)
    ]


def _prefill(decoder: FastDecoder, prompt: list[int]) -> int:
    decoder.cache.reset()
    positions = torch.arange(len(prompt), device=DEVICE)
    hidden = decoder.hidden(torch.tensor(prompt, device=DEVICE), positions, last_only=True)
    return int(decoder.logits(hidden[-1:]).argmax())


ONE_SPLIT = {"sliding_attention": 1, "full_attention": 1}
# More splits than the short prompt has positions: some runs are empty.
MANY_SPLITS = {"sliding_attention": 4, "full_attention": 8}


@pytest.mark.parametrize(
    ("merge_limit", "fuse_prep", "cache_hints", "int8", "splits", "early", "launches"),
    [
        (16384, True, True, False, None, False, ""),
        (0, True, False, False, None, False, ""),
        (16384, False, False, False, None, False, ""),
        (0, False, True, False, None, False, ""),
        (16384, True, True, True, None, False, ""),
        (16384, True, True, False, ONE_SPLIT, False, ""),
        (16384, True, True, False, MANY_SPLITS, True, ""),
        (0, False, True, False, ONE_SPLIT, True, ""),
        (16384, True, True, False, MANY_SPLITS, "prewait", ""),
        (16384, False, True, False, None, "prewait", ""),
        (16384, True, True, False, None, False, "one-wave"),
        (16384, True, True, True, None, False, "one-wave"),
        (16384, True, True, False, None, "prewait", "finalize-launch"),
        (16384, True, True, False, MANY_SPLITS, "prewait", "finalize-and-chunked-merge-launches"),
        (16384, True, True, True, None, "prewait", "finalize-ple-prologue-and-merge-launches"),
    ],
    ids=[
        "merge-at-once",
        "merge-per-head-no-l2-hints",
        "merge-at-once-prep-launch-no-l2-hints",
        "merge-per-head-prep-launch",
        "int8",
        "one-split",
        "early-loads-many-splits",
        "early-loads-one-split-prep-launch",
        "prewait-many-splits",
        "prewait-prep-launch",
        "one-wave-matvecs",
        "one-wave-matvecs-int8",
        "prewait-finalize-launches",
        "prewait-finalize-and-merge-launches-of-8-dimensions-many-splits",
        "int8-down-finalized-in-the-ple-gate",
    ],
)
@torch.inference_mode()
def test_fused_step_equals_the_unfused_step(
    tiny_target: Any,
    prompts: list[list[int]],
    merge_limit: int,
    fuse_prep: bool,
    cache_hints: bool,
    int8: bool,
    splits: dict[str, int] | None,
    early: bool | str,
    launches: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With int8 every linear is an `Int8Linear` (codes and per-row scales), which the fused
    mat-vecs read as such; the unfused step dequantizes them. "prewait" reads the position
    and the first cached keys before the PDL wait (on top of the early loads). "one-wave"
    runs every mat-vec as one wave of 3 programs taking several row blocks of several column
    tiles each (ragged at both ends); "finalize-launch" finalizes the residual stream in a
    launch of its own after each mat-vec that feeds it, "...-and-merge-launches" also
    merges attention's splits in a launch of their own ("chunked": each program merging 8
    dimensions of a head; else a whole head), and "ple-prologue" has every program of the PLE
    gate finalize down's output itself instead."""
    from swarmlab.engine.fast import fused
    from swarmlab.engine.fast.fused import FusedDecodeStep, MatvecConfig
    from swarmlab.engine.quant import Int8Linear, swap_linears

    monkeypatch.setattr(fused, "MERGE_AT_ONCE_LIMIT", merge_limit)
    if merge_limit == 0:
        # The finish kernel then reduces the lm_head's block maxima over several rounds.
        monkeypatch.setattr(fused, "FINISH_BLOCK", 2)
    decoder = _decoder(tiny_target)
    if int8:
        assert swap_linears(decoder, Int8Linear, use_kernel=False) > 0
    runner_state = [torch.zeros(1, dtype=torch.long, device=DEVICE) for _ in range(3)]
    token, position, count = runner_state
    history = torch.zeros(96, dtype=torch.long, device=DEVICE)
    step = FusedDecodeStep(
        decoder,
        token,
        position,
        count,
        history,
        cache_hints=cache_hints,
        fuse_prep=fuse_prep,
        splits=splits,
        attention_early=bool(early),
        attention_prewait=early == "prewait",
        # Ignored by the interpreter; on CUDA, the launch options reach the kernel.
        attention_stages=None if early is True else 1,
        attention_warps=4 if early is True else None,
        use_pdl=early == "prewait",
        finalize_launch=launches.startswith("finalize"),
        merge_launch=launches.endswith("merge-launches"),
        # 8 of the 16 (sliding) or 32 (global) dimensions of a head a merge program
        merge_dims=8 if "chunked" in launches else None,
        ple_gate_prologue="ple-prologue" in launches,
    )
    if launches == "one-wave":
        for launch in step.matvecs:
            launch.config = MatvecConfig(block_n=32, block_k=32, warps=4, stages=1, programs=3)
    # qkv, q/k prep (unless fuse_prep puts it inside attention), attention, o, gate+up, down,
    # PLE gate, PLE projection a layer; plus the PLE model projection, the lm_head and finish.
    # A finalize launch after o, down and the PLE projection, and after the model projection;
    # a merge launch after attention.
    finalizers = 1 if launches.startswith("finalize") else 0
    # (none after down when the PLE gate finalizes its input itself)
    per_layer = (7 if fuse_prep else 8) + 3 * finalizers + launches.endswith("merge-launches")
    per_layer -= "ple-prologue" in launches
    assert len(step.launches) == per_layer * decoder.shape.num_layers + 3 + finalizers
    for prompt in prompts:
        first, expected_tokens, expected_max = _unfused_run(decoder, prompt, STEPS)
        expected_cache = _cache_snapshot(decoder)
        expected_slots = decoder.cache.slot_positions.clone()

        _prefill(decoder, prompt)
        token.fill_(first)
        position.fill_(len(prompt))
        count.fill_(0)
        maxima = []
        for _ in range(STEPS):
            step()
            maxima.append(float(step.best[: step.head.blocks].max()))
        assert history[:STEPS].tolist() == expected_tokens
        assert int(position) == len(prompt) + STEPS and int(count) == STEPS
        torch.testing.assert_close(
            torch.tensor(maxima), torch.tensor(expected_max), rtol=1e-4, atol=1e-4
        )
        for layer, (keys, values) in _cache_snapshot(decoder).items():
            torch.testing.assert_close(keys, expected_cache[layer][0], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(values, expected_cache[layer][1], rtol=1e-4, atol=1e-5)
        assert torch.equal(decoder.cache.slot_positions, expected_slots)


def _unfused_run(
    decoder: FastDecoder, prompt: list[int], steps: int
) -> tuple[int, list[int], list[float]]:
    """The prompt's first greedy token, then `steps` greedy tokens and their logit maxima
    from the unfused decoder."""
    first = _prefill(decoder, prompt)
    tokens, maxima = [], []
    current, pos = first, len(prompt)
    for _ in range(steps):
        logits = decoder.logits(
            decoder.hidden(
                torch.tensor([current], device=DEVICE), torch.tensor([pos], device=DEVICE)
            )
        )[0]
        maxima.append(float(logits.max()))
        current, pos = int(logits.argmax()), pos + 1
        tokens.append(current)
    return first, tokens, maxima


def test_attention_splits_must_be_powers_of_two(tiny_target: Any) -> None:
    from swarmlab.engine.fast.fused import FusedDecodeStep

    state = [torch.zeros(1, dtype=torch.long, device=DEVICE) for _ in range(3)]
    history = torch.zeros(96, dtype=torch.long, device=DEVICE)
    with pytest.raises(ValueError, match="power of two"):
        FusedDecodeStep(_decoder(tiny_target), *state, history, splits={"full_attention": 3})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"merge_dims": 24}, "merge_dims must be a power of two or None, got 24"),
        ({"merge_dims": 0}, "merge_dims must be a power of two or None, got 0"),
    ],
)
def test_merge_dims_are_checked(tiny_target: Any, options: dict[str, int], message: str) -> None:
    """A merge program's share of a query head that is no power of two is refused, with what
    is allowed named, before anything is built."""
    from swarmlab.engine.fast.fused import FusedDecodeStep

    state = [torch.zeros(1, dtype=torch.long, device=DEVICE) for _ in range(3)]
    history = torch.zeros(96, dtype=torch.long, device=DEVICE)
    with pytest.raises(ValueError, match=message):
        FusedDecodeStep(_decoder(tiny_target), *state, history, **options)


def test_every_benchmark_variant_builds_a_step(tiny_target: Any) -> None:
    """`benchmarks/engine_fused.py --only-attention` builds a step from each of its variants'
    options: every one must be an option the step takes, with a value it accepts."""
    from tests.fixtures.fast_engine import load_benchmark

    from swarmlab.engine.fast.fused import FusedDecodeStep

    variants = load_benchmark("engine_fused").ATTENTION_VARIANTS
    decoder = _decoder(tiny_target)
    state = [torch.zeros(1, dtype=torch.long, device=DEVICE) for _ in range(3)]
    history = torch.zeros(96, dtype=torch.long, device=DEVICE)
    for name, options in variants.items():
        step = FusedDecodeStep(decoder, *state, history, use_pdl=True, **options)
        assert len(step.launches) > decoder.shape.num_layers, name


@torch.inference_mode()
def test_attention_ablations_run(tiny_target: Any, prompts: list[list[int]]) -> None:
    """Timing-only variants leave parts of attention out: they must still run (results are
    not checked) and leave the step's bookkeeping going."""
    from swarmlab.engine.fast import fused_kernels as fk
    from swarmlab.engine.fast.fused import FusedDecodeStep

    decoder = _decoder(tiny_target)
    token, position, count = [torch.zeros(1, dtype=torch.long, device=DEVICE) for _ in range(3)]
    history = torch.zeros(96, dtype=torch.long, device=DEVICE)
    everything = fk.ABLATE_KEYS | fk.ABLATE_QUERY | fk.ABLATE_MERGE
    for ablate, early in ((fk.ABLATE_KEYS, True), (fk.ABLATE_QUERY, True), (everything, False)):
        step = FusedDecodeStep(
            decoder, token, position, count, history, attention_ablate=ablate, attention_early=early
        )
        _prefill(decoder, prompts[1])
        position.fill_(len(prompts[1]))
        step()
        assert int(position) == len(prompts[1]) + 1
    # The finalizers' work, then their counters too, left out.
    for skip in (1, 2):
        step = FusedDecodeStep(decoder, token, position, count, history, final_ablate=skip)
        position.fill_(len(prompts[1]))
        step()
        assert int(position) == len(prompts[1]) + 1


def _cache_snapshot(decoder: FastDecoder) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    cache = decoder.cache
    return {layer: (cache.keys[layer].clone(), cache.values[layer].clone()) for layer in cache.keys}


@pytest.mark.parametrize(
    "use_pdl",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.skipif(not CUDA, reason="programmatic dependent launch needs CUDA"),
            id="pdl",
        ),
    ],
)
def test_generation_through_the_fused_runner_is_plain_greedy(
    tiny_target: Any, prompts: list[list[int]], use_pdl: bool
) -> None:
    runner = GreedyRunner(
        _decoder(tiny_target), prefill_chunk=16, fused=FusedSettings(use_pdl=use_pdl)
    )
    cpu_model = tiny_target
    for prompt in prompts:
        expected = reference_greedy(cpu_model, prompt, STEPS)
        assert runner.generate(prompt, STEPS) == expected
    # A stop id cuts generation right after it, as the unfused runner does.
    tokens = runner.generate(prompts[1], STEPS)
    assert (
        runner.generate(prompts[1], STEPS, stop_ids=[tokens[3]])
        == tokens[: tokens.index(tokens[3]) + 1]
    )


def test_a_fused_draft_model_keeps_speculative_decoding_exact(
    tiny_target: Any, tiny_draft: Any, prompts: list[list[int]]
) -> None:
    """The draft decodes with the fused step and extends with the unfused one, so both must
    keep the sliding ring's bookkeeping consistent."""
    target = GreedyRunner(_decoder(tiny_target), prefill_chunk=16, verify_widths=[4])
    draft = GreedyRunner(_decoder(tiny_draft), prefill_chunk=16, fused=FusedSettings())
    prompt = prompts[1]
    tokens, stats = speculative_generate(target, ModelDrafter(draft), prompt, 12, 3)
    assert tokens == reference_greedy(tiny_target, prompt, 12)
    assert stats.steps >= 3


def test_fused_options_are_checked() -> None:
    assert FastOptions.from_env(
        {"SWARMLAB_FAST_FUSED": "1", "SWARMLAB_FAST_PDL": "1"}, "cuda"
    ).fused
    with pytest.raises(FastOptionError, match="must be 0 or 1"):
        FastOptions.from_env({"SWARMLAB_FAST_FUSED": "yes"}, "cuda")
    assert FastOptions.from_env(
        {"SWARMLAB_FAST_FUSED": "1", "SWARMLAB_FAST_KERNELS": "int8"}, "cuda"
    ).fused
    with pytest.raises(FastOptionError, match="plain or int8 weights"):
        FastOptions.from_env({"SWARMLAB_FAST_FUSED": "1", "SWARMLAB_FAST_KERNELS": "int4"}, "cuda")
    screened = {"SWARMLAB_FAST_FUSED": "1", "SWARMLAB_FAST_SCREEN_HEAD": "1"}
    assert FastOptions.from_env(screened, "cuda").screen_head
    # On by default for the fused step on plain weights, and only there.
    assert FastOptions.from_env({"SWARMLAB_FAST_FUSED": "1"}, "cuda").screen_head
    assert not FastOptions.from_env(
        {**screened, "SWARMLAB_FAST_SCREEN_HEAD": "0"}, "cuda"
    ).screen_head
    for default_off in ({}, {"SWARMLAB_FAST_FUSED": "1", "SWARMLAB_FAST_KERNELS": "int8"}):
        assert not FastOptions.from_env(default_off, "cuda").screen_head
    for wrong in (
        {"SWARMLAB_FAST_SCREEN_HEAD": "1"},
        {**screened, "SWARMLAB_FAST_KERNELS": "int8"},
    ):
        with pytest.raises(FastOptionError, match="SCREEN_HEAD=1 screens the fused step"):
            FastOptions.from_env(wrong, "cuda")


def test_the_fused_runner_screens_the_lm_head_when_asked(
    tiny_target: Any, prompts: list[list[int]]
) -> None:
    runner = GreedyRunner(
        _decoder(tiny_target), prefill_chunk=16, fused=FusedSettings(screen_head=True)
    )
    assert runner.fused is not None and runner.fused.screen is not None
    assert runner.generate(prompts[1], 4) == reference_greedy(tiny_target, prompts[1], 4)


@pytest.mark.parametrize("name", ["nvidia-h200", "nvidia-h100-80gb-hbm3"])
def test_the_shipped_tiles_name_the_e4b_mat_vecs(name: str) -> None:
    """Each GPU's tiles file sits where `shipped_configs` looks for that GPU's name and holds
    a tile for every E4B mat-vec and verify mat-mat shape."""
    import json

    from swarmlab.engine.fast.fused import TILES, MatvecConfig
    from swarmlab.engine.fast.fused_verify import SPLITS

    shipped = json.loads((TILES / f"{name}.json").read_text(encoding="utf-8"))
    assert shipped["gpu"].lower().replace(" ", "-") == name
    shapes = {key.split(":")[0] for key in shipped["configs"]}
    # qkv (sliding, shared q, global, shared global q), o (sliding, global), gate+up, down,
    # the three per-layer-embedding projections and the lm_head.
    assert shapes == {
        "3072x2560", "2048x2560", "5120x2560", "4096x2560", "2560x2048", "2560x4096",
        "10240x2560", "2560x10240", "256x2560", "2560x256", "10752x2560", "262144x2560",
    }  # fmt: skip
    for config in shipped["configs"].values():
        tile = MatvecConfig(**config)
        assert tile.block_n >= 1 and tile.block_k & (tile.block_k - 1) == 0
    # The fused verify step's tensor-core mat-mats (DOT=1) name the same shapes, with tiles
    # `tl.dot` takes and splits `candidate_configs` offers.
    verify = {key: MatvecConfig(**c) for key, c in shipped["configs"].items() if "DOT=1" in key}
    assert {key.split(":")[0] for key in verify} == shapes
    for key, tile in verify.items():
        assert "W=" not in key and "WP=16" in key
        assert min(tile.block_n, tile.block_k) >= 16 and tile.split in (1, *SPLITS)


@pytest.mark.skipif(not CUDA, reason="times captured CUDA graphs")
@torch.inference_mode()
def test_tuning_in_the_step_keeps_a_candidate_per_shape_and_the_tokens(
    tiny_target: Any, prompts: list[list[int]]
) -> None:
    from swarmlab.engine.fast.fused import FusedDecodeStep, candidate_configs

    decoder = _decoder(tiny_target)
    token, position, count = [torch.zeros(1, dtype=torch.long, device=DEVICE) for _ in range(3)]
    history = torch.zeros(96, dtype=torch.long, device=DEVICE)
    step = FusedDecodeStep(decoder, token, position, count, history, use_pdl=True)
    prompt = prompts[1]
    first = _prefill(decoder, prompt)
    token.fill_(first)
    position.fill_(len(prompt))
    count.fill_(5)
    report = step.tune_in_step(keys=2, replays=2)
    # Every trial is rewound: its 3 warm-up steps and 2 replays write history[5:8] at most.
    assert int(position) == len(prompt) and int(count) == 5
    assert not history[8:].any()
    assert report["step_ms_after"] > 0
    tuned = [key for key in report if key.startswith(tuple("0123456789"))]
    assert len(tuned) == 2
    for key in tuned:
        launch = next(m for m in step.matvecs if m.key == key)
        assert launch.config in candidate_configs(launch.rows, launch.k)
    # The tiles change speed, not results: decoding on from the prompt stays greedy.
    _prefill(decoder, prompt)
    token.fill_(first)
    position.fill_(len(prompt))
    count.fill_(0)
    for _ in range(STEPS):
        step()
    assert history[:STEPS].tolist() == reference_greedy(tiny_target, prompt, STEPS + 1)[1:]


def test_tune_shapes_descends_one_shape_at_a_time_largest_first() -> None:
    """`tune_shapes` (shared by the decode and verify tuners): the `keys` shapes that stream
    the most bytes are tuned, largest first, each candidate applied to every launch of its
    shape before the step is timed; the fastest stays and untuned shapes keep theirs."""
    from dataclasses import asdict, dataclass

    from swarmlab.engine.fast.fused import MatvecConfig, tune_shapes

    @dataclass
    class Launch:
        key: str
        weight: torch.Tensor
        config: MatvecConfig

    start = MatvecConfig(16, 256, 4)
    big = [Launch("big", torch.zeros(64, 64), start) for _ in range(2)]
    middle = Launch("middle", torch.zeros(32, 64), start)
    small = Launch("small", torch.zeros(8, 8), start)
    launches = [middle, big[0], small, big[1]]
    # The step's time: each launch's tile costs its rows; big ones count double.
    cost = {"big": 2.0, "middle": 1.0, "small": 1.0}
    timed: list[tuple[str, ...]] = []

    def step_ms() -> float:
        timed.append(tuple(f"{m.key}:{m.config.block_n}" for m in launches))
        assert big[0].config == big[1].config  # a shape's launches always move together
        return sum(cost[m.key] * m.config.block_n for m in launches)

    candidates = [MatvecConfig(32, 256, 4), MatvecConfig(4, 256, 4), MatvecConfig(8, 256, 4)]
    report = tune_shapes(launches, lambda launch: candidates, step_ms, keys=2)
    assert big[0].config.block_n == big[1].config.block_n == 4
    assert middle.config.block_n == 4
    assert small.config == start  # not among the 2 largest: untouched
    assert list(report) == ["step_ms_before", "big", "middle", "step_ms_after"]
    assert report["step_ms_before"] == (2 * 2 + 1 + 1) * 16
    assert report["step_ms_after"] == 2 * 2 * 4 + 4 + 16
    assert report["big"][str(asdict(candidates[1]))] == 2 * 2 * 4 + 16 + 16
    # The first shape tuned is the largest: its candidates were timed before middle's.
    assert timed[1] == ("middle:16", "big:32", "small:16", "big:32")


def test_tune_shapes_skips_a_tile_the_gpu_refuses_and_fails_when_none_fits() -> None:
    """A candidate whose step raises one of `refused` (Triton's OutOfResources on a GPU)
    is reported as None and skipped; a shape none of whose candidates fits is an error."""
    from dataclasses import asdict, dataclass

    from swarmlab.engine.fast.fused import MatvecConfig, tune_shapes

    class TooBig(Exception):
        pass

    @dataclass
    class Launch:
        key: str
        weight: torch.Tensor
        config: MatvecConfig

    launch = Launch("only", torch.zeros(8, 8), MatvecConfig(16, 256, 4))

    def step_ms() -> float:
        if launch.config.stages > 4:
            raise TooBig("shared memory")
        return float(launch.config.block_n)

    fits, too_big = MatvecConfig(32, 256, 4, 3), MatvecConfig(8, 256, 4, 6)
    lines: list[str] = []
    report = tune_shapes([launch], lambda _: [fits, too_big], step_ms, 1, lines.append, (TooBig,))
    assert launch.config == fits  # the smaller tile would win, but it does not fit
    assert report["only"] == {str(asdict(fits)): 32.0, str(asdict(too_big)): None}
    assert any("does not fit" in line for line in lines)
    # Other exceptions are not swallowed, and a shape with no tile that fits is refused.
    with pytest.raises(TooBig):
        tune_shapes([launch], lambda _: [too_big], step_ms, 1, refused=())
    launch.config = fits
    with pytest.raises(ValueError, match="no candidate tile fits"):
        tune_shapes([launch], lambda _: [too_big], step_ms, 1, refused=(TooBig,))


def test_the_screen_radius_bounds_the_logit_error() -> None:
    """For any input, the float64 logit of each bf16 row is within radius * |x| of the int8
    screen's, even for inputs aligned with a row's quantization error (the worst case)."""
    from swarmlab.engine.fast.fused import screen_weights

    generator = torch.Generator().manual_seed(3)
    weight = (torch.randn(300, 96, generator=generator) * 0.02).to(torch.bfloat16)
    weight[7, 5] = 0.5  # an outlier: a coarse scale for that row
    screen = screen_weights(weight, rows_at_once=128)
    assert screen.codes.dtype == torch.int8 and int(screen.codes.abs().max()) == 127
    exact = weight.double()
    grid = screen.codes.double() * screen.scale.double()[:, None]
    error = exact - grid
    inputs = torch.cat([torch.randn(64, 96, generator=generator).double(), error[:32]])
    gap = (inputs @ exact.T - inputs @ grid.T).abs()
    reach = inputs.norm(dim=1)[:, None] * screen.radius.double()[None, :]
    assert bool((gap <= reach).all())
    # Tight where it matters: aligned inputs use the whole radius but for the float32 slack.
    aligned = gap[64:].diagonal()
    assert bool((aligned >= 0.99 * reach[64:].diagonal() - 1e-9).all())
    assert float(screen.radius[7]) > 5 * float(screen.radius.median())


@pytest.mark.parametrize("ties", [False, True], ids=["random-rows", "seven-distinct-rows"])
@torch.inference_mode()
def test_the_screened_lm_head_keeps_the_greedy_tokens(
    tiny_target: Any, prompts: list[list[int]], ties: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """screen_head reads int8 codes of the lm_head and then only the bf16 rows that could be
    the maximum: the tokens and the logit maxima are the unfused step's (torch.argmax). With
    only seven distinct rows every logit ties with a seventh of the vocabulary: all of those
    are candidates (several groups a chunk) and the first index must still win."""
    from torch import nn

    from swarmlab.engine.fast import fused
    from swarmlab.engine.fast.fused import FusedDecodeStep, FusedUnsupportedError
    from swarmlab.engine.quant import Int8Linear, swap_linears

    # Several exact-pass programs, and several candidate groups a chunk, on 128 rows.
    monkeypatch.setattr(fused, "SCREEN_CHUNK", 32)
    monkeypatch.setattr(fused, "SCREEN_GROUP", 4)
    decoder = _decoder(tiny_target)
    if ties:
        rows = decoder.lm_head.weight.detach()
        index = torch.arange(rows.shape[0], device=rows.device) % 7
        decoder.lm_head.weight = nn.Parameter(rows[index].clone(), requires_grad=False)
    vocab = decoder.lm_head.weight.shape[0]
    token, position, count = [torch.zeros(1, dtype=torch.long, device=DEVICE) for _ in range(3)]
    history = torch.zeros(96, dtype=torch.long, device=DEVICE)
    step = FusedDecodeStep(decoder, token, position, count, history, screen_head=True)
    assert step.argmax_blocks == vocab // 32
    steps = 4 if ties else 8
    for prompt in prompts[1:] if ties else prompts:
        first, expected_tokens, expected_max = _unfused_run(decoder, prompt, steps)
        _prefill(decoder, prompt)
        token.fill_(first)
        position.fill_(len(prompt))
        count.fill_(0)
        maxima, seen = [], []
        for _ in range(steps):
            step()
            maxima.append(float(step.best[: step.argmax_blocks].max()))
            seen.append(int(step.seen.sum()))
            assert bool((step.floor == float("-inf")).all())  # reset for the next step
        assert history[:steps].tolist() == expected_tokens
        torch.testing.assert_close(
            torch.tensor(maxima), torch.tensor(expected_max), rtol=1e-4, atol=1e-4
        )
        if ties:
            assert all(token < 7 for token in expected_tokens)
            assert all(found >= vocab // 7 for found in seen), seen
        else:
            # The screen leaves few rows: each step computes a small part of the vocabulary.
            assert all(1 <= found < vocab // 4 for found in seen), seen
    swap_linears(decoder, Int8Linear, use_kernel=False)
    with pytest.raises(FusedUnsupportedError, match="int8 already"):
        FusedDecodeStep(decoder, token, position, count, history, screen_head=True)
