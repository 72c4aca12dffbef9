"""`swarmlab engine bench`: single-stream decode speed against the memory roofline.

One run on one GPU measures the ceiling (device copy bandwidth and the bytes a decode step
must read, hence the roofline in tokens per second), the stock baseline (transformers eager
`generate`), and the fast path in each mode (no CUDA graph, graph, torch.compile + graph,
Triton mat-vecs, int8, int4), each at a ~1k-token prompt and 512 new tokens, plus the cost of a
speculative verification step for K = 1..8, optionally the one-graph draft+verify step
(`fast/spec_graph.py`, `spec_graph_k`) with a small random draft, and optionally a bf16 check
of the fast path against transformers. Quantized modes also report how far their teacher-forced
logits are from the bf16 fast path's on the same weights (a few short prompts). Timings use
CUDA events or a synchronised clock; nothing here asserts
a speed, it reports one.
"""

from __future__ import annotations

import copy
import functools
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from swarmlab.engine.fast.config import PRESETS, preset_config
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import FusedSettings, GreedyRunner
from swarmlab.engine.fast.spec_graph import GraphSpeculator
from swarmlab.engine.quant import (
    GemvLinear,
    Int4Linear,
    Int8Linear,
    int4_factory,
    int4_group_size,
    logit_error,
    swap_linears,
    weight_bytes,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Mode:
    """One way of running the fast path."""

    name: str
    use_graph: bool
    compile_step: bool
    kernels: str = "cublas"  # cublas | triton | int8 | int4
    fused: bool = False  # decode with the fused Triton step (fast/fused.py)
    pdl: bool = False  # ... launched with programmatic dependent launch
    screen_head: bool = False  # ... reading the lm_head through an int8 screen (exact argmax)


MODES = {
    mode.name: mode
    for mode in (
        Mode("eager", use_graph=False, compile_step=False),
        Mode("graph", use_graph=True, compile_step=False),
        Mode("compile+graph", use_graph=True, compile_step=True),
        Mode("triton+graph", use_graph=True, compile_step=False, kernels="triton"),
        Mode("triton+compile+graph", use_graph=True, compile_step=True, kernels="triton"),
        Mode("int8+triton+graph", use_graph=True, compile_step=False, kernels="int8"),
        Mode("int8+triton+compile+graph", use_graph=True, compile_step=True, kernels="int8"),
        Mode("int4+triton+graph", use_graph=True, compile_step=False, kernels="int4"),
        Mode("int4+triton+compile+graph", use_graph=True, compile_step=True, kernels="int4"),
        Mode("fused+graph", use_graph=True, compile_step=False, fused=True),
        Mode("fused+pdl+graph", use_graph=True, compile_step=False, fused=True, pdl=True),
        Mode(
            "fused+screen+pdl+graph",
            use_graph=True,
            compile_step=False,
            fused=True,
            pdl=True,
            screen_head=True,
        ),
        Mode(
            "int8+fused+pdl+graph",
            use_graph=True,
            compile_step=False,
            kernels="int8",
            fused=True,
            pdl=True,
        ),
    )
}
DEFAULT_MODES = ("eager", "graph", "compile+graph", "triton+compile+graph")
QUANTIZED = ("int8", "int4")


@dataclass
class BenchSettings:
    preset: str = "gemma-4-e4b"
    prompt_tokens: int = 1024
    new_tokens: int = 512
    hf_new_tokens: int = 32
    max_k: int = 8
    modes: tuple[str, ...] = DEFAULT_MODES
    prefill_chunk: int = 512
    check_prompts: int = 0
    check_tokens: int = 256
    seed: int = 0
    copy_gib: float = 2.0
    check_fp32: bool = True
    spec_graph_k: int = 0
    spec_graph_mode: str = "graph"
    accuracy_prompts: int = 4
    accuracy_tokens: int = 64
    tune_fused: bool = False
    fused_configs: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchReport:
    gpu: str
    torch_version: str
    transformers_version: str
    settings: dict[str, Any]
    copy_bandwidth_gbs: float = 0.0
    bytes_per_token: int = 0
    roofline_tps: float = 0.0
    transformers: dict[str, float] = field(default_factory=dict)
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    speculative: list[dict[str, float]] = field(default_factory=list)
    spec_graph: list[dict[str, Any]] = field(default_factory=list)
    check: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def copy_bandwidth(device: torch.device, gib: float = 2.0, repeats: int = 20) -> float:
    """Device-to-device copy bandwidth in GB/s, counting bytes read plus written."""
    elements = int(gib * 2**30) // 2
    src = torch.randn(elements, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    times = [_timed(lambda: dst.copy_(src)) for _ in range(repeats + 3)][3:]
    return 2 * src.numel() * 2 / statistics.median(times) / 1e9


def _timed(body: Callable[[], object]) -> float:
    """Seconds one call of `body` takes on the current CUDA stream (wall clock on CPU)."""
    if not torch.cuda.is_available():
        return _wall(body)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    body()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / 1e3


def _wall(body: Callable[[], object]) -> float:
    _synchronize()
    began = time.perf_counter()
    body()
    _synchronize()
    return time.perf_counter() - began


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def random_transformers_model(preset: str, device: torch.device, seed: int) -> Any:
    """A bf16 `Gemma4ForCausalLM` of the preset's shape with random weights, on `device`."""
    from transformers import Gemma4ForCausalLM

    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with device:
            model = Gemma4ForCausalLM(preset_config(preset))
    finally:
        torch.set_default_dtype(default)
    return model.eval()


def measure_transformers(model: Any, prompt: torch.Tensor, new_tokens: int) -> dict[str, float]:
    """transformers' own greedy `generate` (eager): time to first token and decode rate."""

    def generate(count: int) -> None:
        model.generate(prompt, max_new_tokens=count, min_new_tokens=count, do_sample=False)

    with torch.inference_mode():
        generate(2)
        first = _wall(lambda: generate(1))
        total = _wall(lambda: generate(new_tokens + 1))
    return {"ttft_ms": first * 1e3, "tps": new_tokens / (total - first), "new_tokens": new_tokens}


def prepare_mode(
    fast: FastDecoder,
    mode: Mode,
    settings: BenchSettings,
    widths: tuple[int, ...],
    tuned: dict[str, Any] | None = None,
) -> GreedyRunner:
    """Swap kernels as the mode asks, then build (and capture) its runner; fused modes take
    `tuned` tile configs from an earlier fused mode instead of tuning again."""
    kernel = fast.device.type == "cuda"  # on CPU (tests) the swaps run their torch path
    if mode.kernels == "triton":
        swap_linears(fast, GemvLinear, use_kernel=kernel)
    elif mode.kernels == "int8":
        swap_linears(fast, Int8Linear, use_kernel=kernel)
    elif mode.kernels == "int4":
        swap_linears(fast, int4_factory(int4_group_size(fast)), use_kernel=kernel)
    fused = None
    if mode.fused:
        tune = settings.tune_fused and not tuned
        fused = FusedSettings(
            use_pdl=mode.pdl,
            tune=tune,
            configs=dict(tuned or {}),
            screen_head=mode.screen_head,
        )
    return GreedyRunner(
        fast,
        prefill_chunk=settings.prefill_chunk,
        use_graph=mode.use_graph,
        compile_step=mode.compile_step,
        sync_every=settings.new_tokens,
        verify_widths=widths,
        fused=fused,
    )


def measure_mode(runner: GreedyRunner, prompt: list[int], new_tokens: int) -> dict[str, Any]:
    """TTFT (prefill + first token) and decode tokens/s of one runner, plus peak memory."""
    runner.generate(prompt, 16)
    cuda = runner.model.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    first: list[torch.Tensor] = []
    ttft = _wall(lambda: first.append(runner.prefill(prompt)))
    tokens: list[int] = []
    decode = _wall(
        lambda: tokens.extend(runner.continue_greedy(first[0], len(prompt), new_tokens, set()))
    )
    return {
        "ttft_ms": ttft * 1e3,
        "tps": (new_tokens - 1) / decode,
        "ms_per_token": decode / (new_tokens - 1) * 1e3,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else 0.0,
        "first_tokens": tokens[:32],
    }


def measure_verify(runner: GreedyRunner, prompt: list[int], max_k: int) -> list[dict[str, float]]:
    """Time of one verification step of width K+1 against one decode step, K = 1..max_k."""
    first = runner.prefill(prompt)
    runner.continue_greedy(first, len(prompt), 2, set())
    decode = statistics.median(_timed(lambda: runner.decode_steps(1)) for _ in range(50))
    rows = []
    for k in range(1, max_k + 1):

        def verify(width: int = k + 1) -> None:
            runner.verify([1] * width, len(prompt))

        step = statistics.median(_timed(verify) for _ in range(30))
        rows.append(
            {"k": k, "verify_ms": step * 1e3, "decode_ms": decode * 1e3, "ratio": step / decode}
        )
    return rows


def check_against_transformers(
    model: Any, runner: GreedyRunner, prompts: list[list[int]], new_tokens: int, model32: Any = None
) -> dict[str, Any]:
    """bf16 fast decoding against transformers on the same weights.

    For each prompt the fast path decodes `new_tokens`; transformers then scores prompt plus
    continuation in one teacher-forced pass. Reported: where transformers' greedy choice first
    departs from the fast tokens (and its top-1 margin there), and the logits' differences.
    With `model32` (a float32 copy), both bf16 paths are also measured against float32, which
    says how much of the difference is bf16 rounding that transformers itself shares.
    """
    rows = []
    for prompt in prompts:
        tokens = runner.generate(prompt, new_tokens)
        sequence = prompt + tokens
        with torch.inference_mode():
            ids = torch.tensor([sequence[:-1]], device=runner.model.device)
            reference = model(ids).logits[0, len(prompt) - 1 :].float()
            fast = torch.cat([lg for _, lg in runner.teacher_forced_logits(sequence[:-1])])
            fast = fast[len(prompt) - 1 :].float()
            row = _compare(reference, fast, tokens)
            if model32 is not None:
                exact = model32(ids).logits[0, len(prompt) - 1 :]
                row |= _against_fp32(exact, reference, fast)
        rows.append(row)
    summary = {
        "prompts": len(prompts),
        "new_tokens": new_tokens,
        "identical_prompts": sum(row["first_divergence"] is None for row in rows),
        "tokens_before_first_divergence_mean": statistics.mean(
            new_tokens if row["first_divergence"] is None else row["first_divergence"]
            for row in rows
        ),
        "max_abs_logit_diff": max(row["max_abs_diff"] for row in rows),
    }
    for key in rows[0]:
        if key.endswith(("mean_abs_diff", "top1_agreement")):
            summary[key] = statistics.mean(row[key] for row in rows)
    return summary | {"rows": rows}


def _against_fp32(
    exact: torch.Tensor, reference: torch.Tensor, fast: torch.Tensor
) -> dict[str, float]:
    best = exact.argmax(-1)
    return {
        "transformers_bf16_vs_fp32_mean_abs_diff": float((reference - exact).abs().mean()),
        "fast_bf16_vs_fp32_mean_abs_diff": float((fast - exact).abs().mean()),
        "transformers_bf16_vs_fp32_top1_agreement": float(
            (reference.argmax(-1) == best).float().mean()
        ),
        "fast_bf16_vs_fp32_top1_agreement": float((fast.argmax(-1) == best).float().mean()),
    }


def _compare(reference: torch.Tensor, fast: torch.Tensor, tokens: list[int]) -> dict[str, Any]:
    greedy = reference.argmax(-1).tolist()
    divergence = next(
        (i for i, (a, b) in enumerate(zip(greedy, tokens, strict=True)) if a != b), None
    )
    margin = None
    if divergence is not None:
        top = reference[divergence].topk(2).values
        margin = float(top[0] - top[1])
    diff = (reference - fast).abs()
    return {
        "first_divergence": divergence,
        "margin_at_divergence": margin,
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": float((reference.argmax(-1) == fast.argmax(-1)).float().mean()),
    }


def _ordered(modes: tuple[str, ...]) -> list[Mode]:
    """Modes that swap kernels in place (triton, then int8, then int4) must run after the
    others; a quantized mode after another starts again from the bf16 weights (`_bf16`)."""
    order = {"cublas": 0, "triton": 1, "int8": 2, "int4": 3}
    return sorted((MODES[name] for name in modes), key=lambda mode: order[mode.kernels])


def run_bench(
    settings: BenchSettings,
    device: torch.device,
    progress: Progress,
    save: Callable[[BenchReport], None] | None = None,
) -> BenchReport:
    """Everything in the module docstring, in one process, on one GPU; `save` is called with
    the partial report after each section, so a run cut short still leaves its figures."""
    save = save or (lambda report: None)
    report = _new_report(settings, device)
    progress("device copy bandwidth")
    report.copy_bandwidth_gbs = copy_bandwidth(device, settings.copy_gib)
    progress(f"random {settings.preset} weights")
    model = random_transformers_model(settings.preset, device, settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (settings.prompt_tokens,), generator=generator).tolist()
    progress("transformers eager generate")
    ids = torch.tensor([prompt], device=device)
    report.transformers = measure_transformers(model, ids, settings.hf_new_tokens)
    fast = _fast_decoder(model, settings)
    report.bytes_per_token = weight_bytes(fast)
    report.roofline_tps = report.copy_bandwidth_gbs * 1e9 / report.bytes_per_token
    save(report)
    accuracy = QuantAccuracy(settings, vocab)
    for mode in _ordered(settings.modes):
        if mode.kernels in QUANTIZED:
            fast = _bf16(fast, model, settings)
            accuracy.record_reference(fast, settings.prefill_chunk)
        progress(f"fast path: {mode.name}")
        result, runner = _run_mode(report, fast, mode, settings, prompt)
        report.modes[mode.name] = result
        if runner is not None and mode.kernels in QUANTIZED and settings.accuracy_prompts:
            progress(f"{mode.kernels} logits against bf16: {settings.accuracy_prompts} prompts")
            result["accuracy"] = accuracy.measure(runner)
        save(report)
        if runner is not None and settings.spec_graph_k and mode.name == settings.spec_graph_mode:
            progress(f"one-graph speculative step, K = 1..{settings.spec_graph_k}")
            report.spec_graph = _spec_graph_section(runner, mode, settings, prompt)
            save(report)
        if runner is not None and mode.name == _check_mode(settings) and settings.check_prompts:
            progress(f"bf16 check against transformers: {settings.check_prompts} prompts")
            prompts = _check_prompts(settings, vocab, generator)
            model32 = copy.deepcopy(model).float() if settings.check_fp32 else None
            report.check = check_against_transformers(
                model, runner, prompts, settings.check_tokens, model32
            )
            del model32
        del runner
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return report


def _check_mode(settings: BenchSettings) -> str:
    """The mode whose runner decodes for the bf16 check: the first fused one, else graph."""
    fused = [name for name in settings.modes if MODES[name].fused]
    return fused[0] if fused else "graph"


def _new_report(settings: BenchSettings, device: torch.device) -> BenchReport:
    import transformers

    return BenchReport(
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch_version=torch.__version__,
        transformers_version=transformers.__version__,
        settings=asdict(settings),
    )


def _fast_decoder(model: Any, settings: BenchSettings) -> FastDecoder:
    """The fast decoder over `model`'s weights, its cache sized for every request of the run."""
    longest = max(settings.prompt_tokens + settings.new_tokens, 512 + settings.check_tokens)
    max_k = max(settings.max_k, settings.spec_graph_k)
    return FastDecoder.from_transformers(
        model, max_len=longest + max_k + 64, max_step_tokens=max_k + 1
    )


def _run_mode(
    report: BenchReport, fast: FastDecoder, mode: Mode, settings: BenchSettings, prompt: list[int]
) -> tuple[dict[str, Any], GreedyRunner | None]:
    widths = tuple(range(2, settings.max_k + 2)) if mode.name == "graph" else ()
    tuned = next(
        (done["fused_configs"] for done in report.modes.values() if "fused_configs" in done),
        settings.fused_configs or None,
    )
    try:
        runner = prepare_mode(fast, mode, settings, widths, tuned)
        result = measure_mode(runner, prompt, settings.new_tokens)
        if runner.fused is not None:
            result["fused_configs"] = runner.fused.configs()
            result["launches_per_step"] = len(runner.fused.launches)
            result["fused_tuning"] = runner.fused.tuning
        if widths:
            report.speculative = measure_verify(runner, prompt, settings.max_k)
    except Exception as exc:  # a failing mode is reported, the others still run
        error = f"{type(exc).__name__}: {exc}"
        return {"error": error, "traceback": traceback.format_exc()[-4000:]}, None
    result["bytes_per_token"] = weight_bytes(fast)
    result["ratio_to_roofline"] = result["tps"] / report.roofline_tps
    if report.transformers:
        result["x_transformers"] = result["tps"] / report.transformers["tps"]
    return result, runner


def _check_prompts(
    settings: BenchSettings, vocab: int, generator: torch.Generator
) -> list[list[int]]:
    """Random prompts of 16-511 tokens for the bf16 check."""
    lengths = torch.randint(16, 512, (settings.check_prompts,), generator=generator).tolist()
    return [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in lengths]


# A small draft of the preset's family: same vocabulary and attention geometry, 4 layers of
# width 256, no per-layer embeddings; only its cost matters (random weights accept ~nothing).
DRAFT_SHAPE: dict[str, Any] = {
    "num_hidden_layers": 4,
    "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "num_kv_shared_layers": 0,
    "hidden_size_per_layer_input": 0,
}
ACCEPTANCE_RATES = (0.5, 0.7, 0.9)


def random_draft_model(preset: str, device: torch.device, seed: int) -> Any:
    """A bf16 random `Gemma4ForCausalLM` of `DRAFT_SHAPE` with the preset's vocabulary."""
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    preset_config(preset)  # refuses an unknown preset with the list of known ones
    config = Gemma4TextConfig(**(PRESETS[preset] | DRAFT_SHAPE))
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with device:
            model = Gemma4ForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    return model.eval()


def measure_spec_graph(
    target: GreedyRunner, draft: GreedyRunner, prompt: list[int], max_k: int, use_graph: bool
) -> list[dict[str, Any]]:
    """Time of one captured draft+verify+accept step for K = 1..max_k against one plain decode
    step of the target, with the speed-up each would give at a few per-token acceptance rates
    (tokens per step 1 + a + ... + a^K for acceptance rate a, divided by the step's ratio)."""
    decode = _decode_step_time(target, prompt)
    draft_decode = _decode_step_time(draft, prompt)
    rows = []
    for k in range(1, max_k + 1):
        speculator = GraphSpeculator(target, draft, k, use_graph=use_graph)
        speculator.start(prompt, max_tokens=target.model.cache.max_len - len(prompt) - k)
        speculator.run_steps(3)
        one_step = functools.partial(speculator.run_steps, 1)
        step = statistics.median(_timed(one_step) for _ in range(20))
        ratio = step / decode
        rows.append(
            {
                "k": k,
                "step_ms": step * 1e3,
                "decode_ms": decode * 1e3,
                "draft_decode_ms": draft_decode * 1e3,
                "ratio": ratio,
                "speedup_all_accepted": (k + 1) / ratio,
                "speedup_at_acceptance": {
                    str(rate): sum(rate**i for i in range(k + 1)) / ratio
                    for rate in ACCEPTANCE_RATES
                },
            }
        )
        del speculator
        _empty_cache(target)
    return rows


def _decode_step_time(runner: GreedyRunner, prompt: list[int]) -> float:
    first = runner.prefill(prompt)
    runner.continue_greedy(first, len(prompt), 2, set())
    return statistics.median(_timed(lambda: runner.decode_steps(1)) for _ in range(30))


def _empty_cache(runner: GreedyRunner) -> None:
    if runner.model.device.type == "cuda":
        torch.cuda.empty_cache()


def _spec_graph_section(
    target: GreedyRunner, mode: Mode, settings: BenchSettings, prompt: list[int]
) -> list[dict[str, Any]]:
    """Build the random draft in `mode` (its kernels, compile, graph) and time the step."""
    try:
        model = random_draft_model(settings.preset, target.model.device, settings.seed + 1)
        fast = FastDecoder.from_transformers(
            model,
            max_len=target.model.cache.max_len,
            max_step_tokens=settings.spec_graph_k + 1,
        )
        del model
        draft = prepare_mode(fast, mode, settings, ())
        return measure_spec_graph(target, draft, prompt, settings.spec_graph_k, mode.use_graph)
    except Exception as exc:  # reported like a failing mode; the rest of the run goes on
        return [{"error": f"{type(exc).__name__}: {exc}"}]


class QuantAccuracy:
    """Quantized modes' teacher-forced logits against the bf16 fast path's, same weights.

    The reference is recorded once, just before the first quantized mode swaps the weights;
    prompts are random tokens from their own generator, so they do not move other sections'.
    """

    def __init__(self, settings: BenchSettings, vocab: int) -> None:
        generator = torch.Generator().manual_seed(settings.seed + 1)
        shape = (settings.accuracy_prompts, settings.accuracy_tokens)
        self.prompts: list[list[int]] = torch.randint(0, vocab, shape, generator=generator).tolist()
        self.reference: torch.Tensor | None = None

    def record_reference(self, fast: FastDecoder, prefill_chunk: int) -> None:
        if self.reference is None and self.prompts:
            runner = GreedyRunner(fast, prefill_chunk=prefill_chunk, use_graph=False)
            self.reference = self._logits(runner)

    def measure(self, runner: GreedyRunner) -> dict[str, Any]:
        """Relative logit error and top-1 agreement over every prompt position."""
        if self.reference is None:
            raise RuntimeError("QuantAccuracy.record_reference must run before the swap")
        figures: dict[str, Any] = logit_error(self.reference, self._logits(runner))
        return figures | {"prompts": len(self.prompts), "tokens": len(self.prompts[0])}

    def _logits(self, runner: GreedyRunner) -> torch.Tensor:
        chunks = [
            logits.float()
            for prompt in self.prompts
            for _, logits in runner.teacher_forced_logits(prompt)
        ]
        return torch.cat(chunks)


def _bf16(fast: FastDecoder, model: Any, settings: BenchSettings) -> FastDecoder:
    """`fast` unless an earlier mode quantized it; then a fresh one over `model`'s weights."""
    if any(isinstance(module, Int8Linear | Int4Linear) for module in fast.modules()):
        return _fast_decoder(model, settings)
    return fast
