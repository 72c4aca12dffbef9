"""The `fast` backend: the server's `Backend` contract on top of `GreedyRunner`.

Options beyond `BackendOptions` come from environment variables (a submission's manifest sets
them in its `env` map), declared once in `FastOptions`:

| variable | default | meaning |
| --- | --- | --- |
| `SWARMLAB_FAST_MAX_CONTEXT` | 4096 | positions in the static KV cache (prompt + new tokens) |
| `SWARMLAB_FAST_KERNELS` | `triton` on CUDA with triton installed, else `torch` | `torch`, `triton` (Triton mat-vecs), `int8` (weight-only int8 + Triton) or `int4` (weight-only int4 in groups of 128 input columns + Triton) |
| `SWARMLAB_FAST_COMPILE` | `1` on CUDA | torch.compile the decode step (before CUDA-graph capture) |
| `SWARMLAB_FAST_DRAFT` | empty | speculative drafter: empty (off), `ngram`, a draft checkpoint directory, or a Gemma 4 MTP assistant directory (`model_type: gemma4_assistant`, detected) |
| `SWARMLAB_FAST_K` | 4 | speculative tokens per step |
| `SWARMLAB_FAST_COMPILE_DRAFT` | `1` on CUDA, else `0` | torch.compile an MTP assistant's K-step proposal, or the one-graph step's prompt-lookup search (before CUDA-graph capture) |
| `SWARMLAB_FAST_SPEC_GRAPH` | `1` on CUDA, else `0` | with any drafter (prompt lookup, a draft checkpoint or an MTP assistant): run drafting, verification and acceptance as one captured step (`fast/spec_graph.py`, `fast/assistant.py`) instead of the host loop |
| `SWARMLAB_FAST_FUSED` | `0` | `1`: decode with the fused Triton step (`fused.py`; CUDA and triton), and verify drafts with the fused verify step (`fused_verify.py`) |
| `SWARMLAB_FAST_PDL` | `0` | `1`: launch the fused step's kernels with programmatic dependent launch |
| `SWARMLAB_FAST_SCREEN_HEAD` | `1` with `SWARMLAB_FAST_FUSED=1` on bf16 weights, else `0` | the fused decode and verify steps read an int8 copy of the lm_head first, then only the bf16 rows that could be the greedy maximum (the same tokens, 3-4% faster decode steps on E4B for 0.67 GB more memory; not with `SWARMLAB_FAST_KERNELS=int8`, whose lm_head is int8 already) |
| `SWARMLAB_FAST_TUNE` | `0` | `1`: time tile configs for each fused mat-vec at start (about a minute) |
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from swarmlab.engine.backend import BackendOptions
from swarmlab.engine.fast.assistant import (
    AssistantSpeculator,
    load_assistant_drafter,
    load_mtp_assistant,
)
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import FusedSettings, GreedyRunner
from swarmlab.engine.fast.spec_graph import GraphSpeculator, LookupSpeculator
from swarmlab.engine.loading import is_assistant_checkpoint, load_model
from swarmlab.engine.logprobs import chunk_entries
from swarmlab.engine.quant import (
    GemvLinear,
    Int8Linear,
    int4_factory,
    int4_group_size,
    swap_linears,
)
from swarmlab.engine.speculative import (
    Drafter,
    ModelDrafter,
    NgramDrafter,
    check_draft_vocabulary,
    speculative_generate,
)

KERNELS = ("torch", "triton", "int8", "int4")
ENV_NAMES = (
    "SWARMLAB_FAST_MAX_CONTEXT",
    "SWARMLAB_FAST_KERNELS",
    "SWARMLAB_FAST_COMPILE",
    "SWARMLAB_FAST_DRAFT",
    "SWARMLAB_FAST_K",
    "SWARMLAB_FAST_COMPILE_DRAFT",
    "SWARMLAB_FAST_SPEC_GRAPH",
    "SWARMLAB_FAST_FUSED",
    "SWARMLAB_FAST_PDL",
    "SWARMLAB_FAST_SCREEN_HEAD",
    "SWARMLAB_FAST_TUNE",
)


class FastOptionError(ValueError):
    """A SWARMLAB_FAST_* environment variable holds an unusable value."""


@dataclass(frozen=True)
class FastOptions:
    """The fast backend's own settings (see the module docstring)."""

    max_context: int = 4096
    kernels: str = "torch"
    compile_step: bool = False
    draft: str = ""
    k: int = 4
    compile_draft: bool = False
    spec_graph: bool = False
    fused: bool = False
    pdl: bool = False
    screen_head: bool = False
    tune: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], device: str) -> FastOptions:
        cuda = device.startswith("cuda")
        triton_ready = cuda and importlib.util.find_spec("triton") is not None
        options = cls(
            max_context=_int(env, "SWARMLAB_FAST_MAX_CONTEXT", 4096),
            kernels=env.get("SWARMLAB_FAST_KERNELS", "triton" if triton_ready else "torch"),
            compile_step=env.get("SWARMLAB_FAST_COMPILE", "1" if cuda else "0") == "1",
            draft=env.get("SWARMLAB_FAST_DRAFT", ""),
            k=_int(env, "SWARMLAB_FAST_K", 4),
            # On by default on CUDA: a compiled K = 4 proposal took 0.79 ms against 2.57
            # uncompiled on an H200 (docs/engine-performance.md).
            compile_draft=_flag(env, "SWARMLAB_FAST_COMPILE_DRAFT", cuda),
            spec_graph=_flag(env, "SWARMLAB_FAST_SPEC_GRAPH", cuda),
            fused=_flag(env, "SWARMLAB_FAST_FUSED", False),
            pdl=_flag(env, "SWARMLAB_FAST_PDL", False),
            screen_head=_flag(env, "SWARMLAB_FAST_SCREEN_HEAD", True),
            tune=_flag(env, "SWARMLAB_FAST_TUNE", False),
        )
        if options.kernels not in KERNELS:
            raise FastOptionError(
                f"SWARMLAB_FAST_KERNELS={options.kernels!r}; use one of {', '.join(KERNELS)}"
            )
        if options.kernels != "torch" and not triton_ready:
            raise FastOptionError(
                f"SWARMLAB_FAST_KERNELS={options.kernels} needs --device cuda and the triton "
                "package; set SWARMLAB_FAST_KERNELS=torch"
            )
        if options.fused and not triton_ready and not interpreted():
            raise FastOptionError(
                "SWARMLAB_FAST_FUSED=1 needs --device cuda and the triton package; unset it"
            )
        if options.fused and options.kernels == "int4":
            raise FastOptionError(
                "SWARMLAB_FAST_FUSED=1 reads plain or int8 weights; use "
                "SWARMLAB_FAST_KERNELS=triton or int8"
            )
        plain_fused = options.fused and options.kernels != "int8"
        if env.get("SWARMLAB_FAST_SCREEN_HEAD") == "1" and not plain_fused:
            raise FastOptionError(
                "SWARMLAB_FAST_SCREEN_HEAD=1 screens the fused step's bf16 lm_head: set "
                "SWARMLAB_FAST_FUSED=1 with SWARMLAB_FAST_KERNELS=triton or torch, or unset it"
            )
        # On by default wherever it applies (the fused step on plain weights).
        options = replace(options, screen_head=options.screen_head and plain_fused)
        return options


def interpreted() -> bool:
    """Triton kernels run on CPU through its interpreter (tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise FastOptionError(f"{name}={raw!r} must be a positive integer")
    return int(raw)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "1" if default else "0")
    if raw not in ("0", "1"):
        raise FastOptionError(f"{name}={raw!r} must be 0 or 1")
    return raw == "1"


def build_runner(
    model_dir: Path,
    backend: BackendOptions,
    options: FastOptions,
    verify_widths: tuple[int, ...] = (),
    keep_hidden: bool = False,
) -> GreedyRunner:
    """Load a checkpoint and wrap it in a (captured, on CUDA) greedy runner; `keep_hidden`
    leaves each step's hidden states in static buffers (for the MTP assistant drafter)."""
    model = load_model(model_dir, backend.device, backend.dtype)
    fast = FastDecoder.from_transformers(
        model,
        max_len=options.max_context,
        max_step_tokens=max(backend.prefill_chunk, options.k + 1),
    )
    del model
    if keep_hidden:
        fast.keep_hidden()
    if options.kernels == "triton":
        swap_linears(fast, GemvLinear, use_kernel=True)
    elif options.kernels == "int8":
        swap_linears(fast, Int8Linear, use_kernel=True)
    elif options.kernels == "int4":
        swap_linears(fast, int4_factory(int4_group_size(fast)), use_kernel=True)
    cuda = fast.device.type == "cuda"
    return GreedyRunner(
        fast,
        prefill_chunk=backend.prefill_chunk,
        use_graph=cuda,
        compile_step=options.compile_step,
        verify_widths=verify_widths,
        fused=FusedSettings(use_pdl=options.pdl, tune=options.tune, screen_head=options.screen_head)
        if options.fused
        else None,
    )


class FastBackend:
    """Greedy decoding (optionally speculative) and prompt scoring with the fast decoder."""

    def __init__(
        self,
        runner: GreedyRunner,
        drafter: Drafter | None = None,
        k: int = 4,
        speculator: GraphSpeculator | None = None,
    ) -> None:
        self.runner = runner
        self.drafter = drafter
        self.k = k
        self.speculator = speculator

    @classmethod
    def from_options(
        cls, backend: BackendOptions, env: Mapping[str, str] | None = None
    ) -> FastBackend:
        """The registry's factory: options from `backend` plus SWARMLAB_FAST_* variables."""
        options = FastOptions.from_env(os.environ if env is None else env, backend.device)
        checkpoint = options.draft not in ("", "ngram")
        assistant = checkpoint and is_assistant_checkpoint(Path(options.draft))
        one_graph = options.spec_graph and bool(options.draft)
        widths = (options.k + 1,) if options.draft and not one_graph else ()
        runner = build_runner(backend.model_dir, backend, options, widths, keep_hidden=assistant)
        if one_graph:
            return cls(runner, k=options.k, speculator=_speculator(options, backend, runner))
        return cls(runner, _drafter(options, backend, runner), options.k)

    @property
    def max_context(self) -> int:
        """Prompt plus new tokens this backend can hold (the server caps requests with it)."""
        speculative = self.drafter is not None or self.speculator is not None
        reserve = self.k if speculative else 0
        return self.runner.model.cache.max_len - reserve

    def generate(
        self, prompt_ids: list[int], max_tokens: int, stop_ids: set[int] | None
    ) -> list[int]:
        """Greedy continuation; see `Backend.generate`."""
        if self.speculator is not None:
            tokens, _ = self.speculator.generate(prompt_ids, max_tokens, stop_ids or ())
            return tokens
        if self.drafter is None:
            return self.runner.generate(prompt_ids, max_tokens, stop_ids or ())
        tokens, _ = speculative_generate(
            self.runner, self.drafter, prompt_ids, max_tokens, self.k, stop_ids
        )
        return tokens

    @torch.inference_mode()
    def prompt_logprobs(self, prompt_ids: list[int]) -> list[dict[int, float] | None]:
        """Teacher-forced log-probabilities in prefill chunks; see `Backend.prompt_logprobs`."""
        entries: list[dict[int, float] | None] = [None]
        scored = prompt_ids[:-1]
        for start, logits in self.runner.teacher_forced_logits(scored) if scored else ():
            targets = prompt_ids[start + 1 : start + 1 + len(logits)]
            entries.extend(chunk_entries(logits, targets))
        return entries


def _speculator(
    options: FastOptions, backend: BackendOptions, runner: GreedyRunner
) -> GraphSpeculator:
    if options.draft == "ngram":
        return LookupSpeculator(runner, options.k, compile_step=options.compile_draft)
    path = Path(options.draft)
    if is_assistant_checkpoint(path):
        assistant = load_mtp_assistant(path, runner.model, backend.device, backend.dtype)
        return AssistantSpeculator(runner, assistant, options.k, compile_step=options.compile_draft)
    return GraphSpeculator(runner, build_runner(path, backend, options), options.k)


def _drafter(options: FastOptions, backend: BackendOptions, runner: GreedyRunner) -> Drafter | None:
    if not options.draft:
        return None
    if options.draft == "ngram":
        return NgramDrafter()
    if is_assistant_checkpoint(Path(options.draft)):
        return load_assistant_drafter(
            Path(options.draft),
            runner.model,
            backend.device,
            backend.dtype,
            options.k,
            use_graph=runner.use_graph,
            compile_step=options.compile_draft,
        )
    draft_runner = build_runner(Path(options.draft), backend, options)
    check_draft_vocabulary(runner, draft_runner)
    return ModelDrafter(draft_runner)
