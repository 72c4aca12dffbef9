"""Drive a `FastDecoder`: chunked prefill, then greedy decoding one token per step.

On CUDA the per-token step (decoder, argmax, feeding the token back, advancing the position)
is captured once in a CUDA graph and replayed; the host only reads the generated ids every
`sync_every` steps to look for a stop id, so the GPU never waits for Python inside a step.
Verification steps of a fixed width (speculative decoding) are captured the same way.
On CPU the same code runs eagerly, which is what the tests exercise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from swarmlab.engine.fast.graphs import capture_graph
from swarmlab.engine.fast.model import FastDecoder

if TYPE_CHECKING:
    from swarmlab.engine.fast.fused import FusedDecodeStep
    from swarmlab.engine.fast.fused_verify import FusedVerifyStep

DEFAULT_SYNC_EVERY = 32


class EmptyPromptError(ValueError):
    """Generation needs at least one prompt token."""


class CapturedStep:
    """A fixed-width step over static input buffers, replayed from a CUDA graph when possible."""

    def __init__(self, body: Callable[[], None], device: torch.device, use_graph: bool) -> None:
        self.body = body
        self.graph: torch.cuda.CUDAGraph | None = None
        if use_graph and device.type == "cuda":
            self.graph = capture_graph(body)

    def __call__(self) -> None:
        if self.graph is None:
            self.body()
        else:
            self.graph.replay()


@dataclass
class FusedSettings:
    """How to build the fused decode step (`fused.py`): programmatic dependent launch, and
    tile configs: those shipped for this GPU model (`fused.shipped_configs`), overridden by
    `configs` (from an earlier `configs()`) where they name the same shape, or tuned on the
    spot; `fuse_prep=False` keeps the q/k prep as a
    launch of its own instead of inside attention; `cache_hints=False` drops the L2 eviction
    hints (streamed weights evict first, norm weights last); `screen_head` reads the bf16
    lm_head through an int8 screen and then only its candidate rows (same tokens, half its
    bytes; not for int8 weights), in the decode step and the fused verify steps alike."""

    use_pdl: bool = False
    fuse_prep: bool = True
    cache_hints: bool = True
    screen_head: bool = False
    tune: bool = False
    configs: dict[str, Any] = field(default_factory=dict)
    tuned: dict[str, Any] = field(default_factory=dict)


def _fused_step(runner: GreedyRunner, settings: FusedSettings) -> FusedDecodeStep:
    from swarmlab.engine.fast.fused import FusedDecodeStep, shipped_configs

    step = FusedDecodeStep(
        runner.model,
        runner.token,
        runner.position,
        runner.count,
        runner.history,
        use_pdl=settings.use_pdl,
        cache_hints=settings.cache_hints,
        fuse_prep=settings.fuse_prep,
        screen_head=settings.screen_head,
    )
    # The shipped tiles, then any given ones on top (they may name other shapes or dtypes).
    step.use_configs(shipped_configs(runner.model.device))
    step.use_configs(settings.configs)
    if settings.tune:
        with torch.inference_mode():
            settings.tuned = step.tune()
    return step


def _fused_verify_step(
    runner: GreedyRunner,
    settings: FusedSettings,
    width: int,
    buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> FusedVerifyStep:
    from swarmlab.engine.fast.fused import shipped_configs
    from swarmlab.engine.fast.fused_verify import FusedVerifyStep

    ids, positions, out = buffers
    step = FusedVerifyStep(
        runner.model,
        width,
        ids,
        positions,
        out,
        use_pdl=settings.use_pdl,
        cache_hints=settings.cache_hints,
        # The decode step's int8 screen of the lm_head, shared (0.67 GB on E4B).
        screen=runner.fused.screen if runner.fused is not None else None,
    )
    # Mat-mat keys name their padded width (WP) and DOT, so decode tiles never apply; verify
    # tiles (tuned at any width of that WP) may.
    step.use_configs(shipped_configs(runner.model.device))
    step.use_configs(settings.configs)
    return step


VerifyStep = tuple[CapturedStep, torch.Tensor, torch.Tensor, torch.Tensor]


class GreedyRunner:
    """Greedy generation with a `FastDecoder`; one request at a time."""

    def __init__(
        self,
        model: FastDecoder,
        prefill_chunk: int = 512,
        use_graph: bool = True,
        compile_step: bool = False,
        sync_every: int = DEFAULT_SYNC_EVERY,
        verify_widths: Iterable[int] = (),
        fused: FusedSettings | None = None,
        pad_prefill: bool | None = None,
    ) -> None:
        if prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be at least 1, got {prefill_chunk}")
        self.model = model
        self.prefill_chunk = prefill_chunk
        self.use_graph = use_graph
        self.sync_every = sync_every
        device = model.device
        self._forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = model
        if compile_step:
            self._forward = torch.compile(model, dynamic=False)
        max_len = model.cache.max_len
        self.token = torch.zeros(1, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.count = torch.zeros(1, dtype=torch.long, device=device)
        self.history = torch.zeros(max_len, dtype=torch.long, device=device)
        self.fused: FusedDecodeStep | None = None
        self._fused_settings = fused
        # Fused verify steps by width, and why a width runs unfused (`_build_verify`).
        self.fused_verify: dict[int, FusedVerifyStep] = {}
        self.verify_fallbacks: dict[int, str] = {}
        if fused is not None:
            self.fused = _fused_step(self, fused)
        # Captured before any request: a capture's warm-up runs write into the cache.
        with torch.inference_mode():
            self._decode = CapturedStep(self._decode_body, device, use_graph)
            self._verify_steps = {width: self._build_verify(width) for width in verify_widths}
            # Prefill in fixed sizes, each captured once: an eager 1k-token prefill launches
            # ~2,300 kernels and is bound by the host (~45 ms on an H200).
            if pad_prefill is None:
                pad_prefill = use_graph and device.type == "cuda"
            self._prefill_steps = (
                {size: self._build_prefill(size) for size in prefill_sizes(prefill_chunk)}
                if pad_prefill
                else {}
            )
        self.model.cache.reset()

    @property
    def step_forward(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The fixed-shape step (compiled when asked) that captured bodies call:
        (tokens, positions) -> the greedy token after each position."""
        return self._forward

    def _decode_body(self) -> None:
        if self.fused is not None:
            self.fused()
            return
        nxt = self._forward(self.token, self.position)
        self.history.index_copy_(0, self.count, nxt)
        self.token.copy_(nxt)
        self.position.add_(1)
        self.count.add_(1)

    @torch.inference_mode()
    def prefill(self, prompt: list[int]) -> torch.Tensor:
        """Reset the cache, feed the prompt in chunks; the greedy next token ([1], on device)."""
        if not prompt:
            raise EmptyPromptError("prompt_ids must hold at least one token")
        self.model.cache.reset()
        return self.extend(prompt, 0)

    @torch.inference_mode()
    def extend(self, tokens: list[int], start: int) -> torch.Tensor:
        """Feed `tokens` at positions start.. (in chunks) after what the cache holds; the
        greedy token that follows them ([1], on device)."""
        if self._prefill_steps:
            for offset in range(0, len(tokens), self.prefill_chunk):
                chunk = tokens[offset : offset + self.prefill_chunk]
                nxt = self._padded_prefill(chunk, start + offset)
            return nxt.clone()
        device = self.model.device
        ids = torch.tensor(tokens, dtype=torch.long, device=device)
        for offset in range(0, len(tokens), self.prefill_chunk):
            stop = min(offset + self.prefill_chunk, len(tokens))
            positions = torch.arange(start + offset, start + stop, device=device)
            hidden = self.model.hidden(ids[offset:stop], positions, last_only=True)
        return torch.argmax(self.model.logits(hidden[-1:]), dim=-1)

    def _padded_prefill(self, chunk: list[int], start: int) -> torch.Tensor:
        """Feed one chunk through the smallest prepared size that holds it, padded in front
        with copies of its first token at its first position (they recompute that token's
        own cache entries, and are masked as keys); the greedy token after the chunk."""
        size = next(size for size in self._prefill_steps if size >= len(chunk))
        step, inputs, out = self._prefill_steps[size]
        pad = size - len(chunk)
        rows = torch.tensor(
            [
                [chunk[0]] * pad + chunk,
                [start] * pad + list(range(start, start + len(chunk))),
                [0] * pad + [1] * len(chunk),
            ],
            dtype=torch.long,
        )
        inputs.copy_(rows)
        step()
        return out

    def _build_prefill(self, size: int) -> tuple[CapturedStep, torch.Tensor, torch.Tensor]:
        device = self.model.device
        inputs = torch.zeros(3, size, dtype=torch.long, device=device)
        inputs[1] = torch.arange(size, device=device)
        inputs[2] = 1
        out = torch.zeros(1, dtype=torch.long, device=device)

        def body() -> None:
            hidden = self.model.hidden(
                inputs[0], inputs[1], last_only=True, key_valid=inputs[2] > 0
            )
            out.copy_(torch.argmax(self.model.logits(hidden[-1:]), dim=-1))

        return CapturedStep(body, device, self.use_graph), inputs, out

    @torch.inference_mode()
    def generate(
        self, prompt: list[int], max_tokens: int, stop_ids: Iterable[int] = ()
    ) -> list[int]:
        """Greedy continuation: at most `max_tokens` ids, ending after the first stop id."""
        if max_tokens < 1:
            return []
        self.model.cache.check_fits(len(prompt) + max_tokens)
        return self.continue_greedy(self.prefill(prompt), len(prompt), max_tokens, set(stop_ids))

    @torch.inference_mode()
    def continue_greedy(
        self, first: torch.Tensor, position: int, max_tokens: int, stops: set[int]
    ) -> list[int]:
        """`first` (the token for `position`, not yet fed) and up to `max_tokens - 1` greedy
        successors, decoded by the captured step; ends after the first stop id."""
        self.history[0:1].copy_(first)
        self.token.copy_(first)
        self.position.fill_(position)
        self.count.fill_(1)
        produced: list[int] = []
        while len(produced) < max_tokens:
            target = min(max_tokens, len(produced) + self.sync_every)
            self.decode_steps(target - max(len(produced), 1))
            produced = self.history[:target].tolist()
            if cut := _stop_index(produced, stops):
                return produced[:cut]
        return produced

    @torch.inference_mode()
    def teacher_forced_logits(self, tokens: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Reset, then feed `tokens` in prefill chunks; yield (start, logits of the chunk).

        Chunks bound memory: a full-vocabulary float32 log-softmax of a long prompt at once
        would not fit. Logits at index i predict `tokens[start + i + 1]`.
        """
        self.model.cache.reset()
        device = self.model.device
        ids = torch.tensor(tokens, dtype=torch.long, device=device)
        for start in range(0, len(tokens), self.prefill_chunk):
            stop = min(start + self.prefill_chunk, len(tokens))
            positions = torch.arange(start, stop, device=device)
            yield start, self.model.logits(self.model.hidden(ids[start:stop], positions))

    def decode_steps(self, steps: int) -> None:
        """Replay the decode step `steps` times with no host read (benchmarks time this)."""
        for _ in range(steps):
            self._decode()

    @torch.inference_mode()
    def verify(self, tokens: list[int], start: int) -> list[int]:
        """Feed `tokens` at positions start.. in one step; the greedy token after each."""
        step, ids, positions, out = self._verify_step(len(tokens))
        ids.copy_(torch.tensor(tokens, dtype=torch.long))
        positions.copy_(torch.arange(start, start + len(tokens)))
        step()
        return out.tolist()

    def _verify_step(self, width: int) -> VerifyStep:
        if width not in self._verify_steps:
            raise ValueError(
                f"no verification step of width {width} was prepared; pass it in "
                "GreedyRunner(verify_widths=...)"
            )
        return self._verify_steps[width]

    def _build_verify(self, width: int) -> VerifyStep:
        """A verification step of `width` tokens: the fused verify step when this runner is
        fused and it can run that width, else the unfused forward."""
        device = self.model.device
        ids = torch.zeros(width, dtype=torch.long, device=device)
        positions = torch.arange(width, device=device)
        out = torch.zeros(width, dtype=torch.long, device=device)
        fused = self._try_fused_verify(width, (ids, positions, out))
        if fused is not None:
            return CapturedStep(fused, device, self.use_graph), ids, positions, out

        def body() -> None:
            out.copy_(self._forward(ids, positions))

        return CapturedStep(body, device, self.use_graph), ids, positions, out

    def _try_fused_verify(
        self, width: int, buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> FusedVerifyStep | None:
        """The fused verify step of `width` over `buffers` (ids, positions, out), or None
        when this runner is not fused or the step cannot take that width: wider than 16, or
        wider than the model's `max_step_tokens`, where the unfused forward runs a wide step
        (keys kept aside, the ring written after the last layer) that the fused one lacks.
        The reason is kept in `verify_fallbacks`."""
        if self._fused_settings is None:
            return None
        from swarmlab.engine.fast.fused import FusedUnsupportedError

        try:
            step = _fused_verify_step(self, self._fused_settings, width, buffers)
        except FusedUnsupportedError as exc:
            self.verify_fallbacks[width] = str(exc)
            return None
        self.fused_verify[width] = step
        return step

    def verify_forward(self, width: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The width-`width` forward a captured speculative step calls ((tokens, positions)
        -> the greedy token after each): the fused verify step, fed through its own buffers,
        when this runner is fused and can run that width; else `step_forward`. Call it before
        capturing the step (a fused step of a new width is built here)."""
        step = self.fused_verify.get(width)
        if step is None and width not in self.verify_fallbacks:
            device = self.model.device
            buffers = (
                torch.zeros(width, dtype=torch.long, device=device),
                torch.arange(width, device=device),
                torch.zeros(width, dtype=torch.long, device=device),
            )
            step = self._try_fused_verify(width, buffers)
        if step is None:
            return self._forward
        fused = step

        def forward(tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
            fused.ids.copy_(tokens)
            fused.positions.copy_(positions)
            fused()
            return fused.out

        return forward


def prefill_sizes(chunk: int) -> list[int]:
    """Prefill step sizes prepared for a prefill chunk: powers of two from 8, then the chunk
    itself (a prompt's last partial chunk is padded to the next one: at most 2x the work)."""
    sizes = [size for size in (2**power for power in range(3, 16)) if size < chunk]
    return [*sizes, chunk]


def _stop_index(tokens: list[int], stops: set[int]) -> int:
    """Length to keep: through the first stop id, or 0 when there is none."""
    for index, token in enumerate(tokens):
        if token in stops:
            return index + 1
    return 0
