"""The fused decode step: one Gemma-4 token in 10 Triton launches a layer, no torch ops.

`FusedDecodeStep` reads a built `FastDecoder` (its weights, rope tables and KV cache, shared,
not copied) and lays out every launch of one decode step once, with all arguments bound: the
per-layer-embedding projection, then per layer qkv, attention (with the q/k norms, RoPE and
the cache write), o, gate+up (GeGLU), down, PLE gate, PLE projection, then the lm_head with the
softcap and block argmax, and a finish kernel that feeds the token back. `fuse_prep=False`
keeps the q/k prep as a launch of its own before attention (8 a layer), for comparison.
`screen_head=True` reads an int8 copy of the lm_head first and then only the bf16 rows that
could be the maximum (`screen_weights`, `fk.head_verify_kernel`): the same greedy token for
half the lm_head's bytes. `GreedyRunner(fused=True)` captures the list in a CUDA graph. Where
norms, residual adds and activations go is described in `fused_kernels.py`.

Each mat-vec's tile shape comes from `default_config` or, with `tune()`, from timing a few
candidates per distinct shape (L2 flushed between runs, as in a real step where 9 GB stream
past it); `configs()` / `use_configs()` save and restore the choice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import torch
from torch import nn

from swarmlab.engine.fast import fused_kernels as fk
from swarmlab.engine.fast.config import SLIDING
from swarmlab.engine.fast.graphs import capture_graph, replay_seconds
from swarmlab.engine.fast.kernels import MATVEC_TILES
from swarmlab.engine.fast.model import Block, FastDecoder
from swarmlab.engine.quant import Int8Linear


class FusedUnsupportedError(ValueError):
    """The fused step cannot run this decoder as configured."""


@dataclass(frozen=True)
class MatvecConfig:
    block_n: int
    block_k: int
    warps: int
    stages: int = 3
    # 0: one row block a program (as many waves as blocks need); N > 0: N programs in one
    # wave, each streaming a contiguous run of row blocks (matvec_kernel's FLAT).
    programs: int = 0
    # Verify mat-mats only: the columns cut into this many runs, one program each per row
    # block, whose float32 partial sums the consumer adds (matmat_kernel's SPLIT).
    split: int = 1


@dataclass
class _Final:
    """What a mat-vec's last program rebuilds: res_out = (res + norm(own output) * g_post)
    * scalar, and the next mat-vec's input rmsnorm(res_out) * g_pre into `xin`."""

    res: torch.Tensor
    res_out: torch.Tensor
    from_token: bool = False
    g_post: torch.Tensor | None = None
    scalar: torch.Tensor | None = None
    g_pre: torch.Tensor | None = None


def _pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def default_config(rows: int, k: int) -> MatvecConfig:
    """Rows per program so that ~2 programs per SM stream 512-column tiles (on CPU, under
    the interpreter, as few programs as possible: each costs milliseconds there)."""
    if fk.INTERPRETED:
        return MatvecConfig(min(64, _pow2(rows)), min(256, _pow2(k)), 4)
    block_k = min(512, _pow2(k))
    block_n = 16
    while block_n > 1 and -(-rows // block_n) < 264:
        block_n //= 2
    return MatvecConfig(block_n, block_k, 4 if block_n * block_k <= 4096 else 8)


# One-wave tiles (block_n, block_k, warps) that `candidate_configs` tries at 1x and 2x the
# SM count when asked to.
FLAT_TILES: tuple[tuple[int, int, int], ...] = (
    (2, 1024, 4),
    (4, 512, 4),
    (8, 512, 8),
    (8, 256, 4),
    (16, 256, 8),
)


def candidate_configs(rows: int, k: int, sms: int = 0) -> list[MatvecConfig]:
    """What `tune` tries for one shape: the default and its neighbours; with `sms` (the
    GPU's SM count) also one-wave configs of FLAT_TILES with `sms` and 2 * `sms` programs."""
    seen: list[MatvecConfig] = [default_config(rows, k)]
    for block_n, block_k, warps in FLAT_TILES if sms else ():
        for programs in (sms, 2 * sms):
            if block_k <= _pow2(k) and -(-rows // block_n) >= programs:
                seen.append(MatvecConfig(block_n, block_k, warps, 1, programs))
    for block_n, block_k, warps, stages in MATVEC_TILES:
        if block_k > _pow2(k) or -(-rows // block_n) < 32:
            continue
        config = MatvecConfig(block_n, block_k, warps, stages)
        if config not in seen:
            seen.append(config)
    # Whole rows in one tile: with PDL a program loads all of its weights before it waits
    # for the previous kernel, so a small mat-vec streams while the one before finishes.
    if _pow2(k) <= 4096:
        for block_n in (1, 2, 4):
            if block_n * _pow2(k) <= 8192 and -(-rows // block_n) >= 32:
                config = MatvecConfig(block_n, _pow2(k), 8 if block_n * _pow2(k) > 4096 else 4)
                if config not in seen:
                    seen.append(config)
    return seen


# Attention splits are merged in one round of loads up to this many float32 values (else one
# query head at a time, which keeps registers in bounds on the 512-wide global heads).
MERGE_AT_ONCE_LIMIT = 16384

# Dimensions of a query head each merge program writes: 32 (64 programs on the sliding
# layers, 128 on the global ones, 4-8 KB of partials each) took 0.058 ms off a step against
# one program a head on an H100 (3.696 against 3.754 ms); 16 and 64 were no better
# (3.701, 3.710). Prediction 32.
MERGE_DIMS = 32

# Warps of a finalize launch (one program over the hidden size; 4 and 16 timed within
# 0.03 ms of 8 on an H100).
FINALIZE_WARPS = 8

# Software-pipelining depth of the attention launch: its key loop runs 1-3 times, and
# Triton's default pipeline cost ~1.3 us a layer more than none (measured on an H200).
ATTENTION_STAGES = 1

# Block maxima the finish kernel reduces per round of loads.
FINISH_BLOCK = 16384

# Bytes of weight copies a tuning graph streams per candidate (several times the 50 MB L2).
TUNE_BYTES = 256 * 2**20


TILES = Path(__file__).with_name("tiles")


class _Tunable(Protocol):
    """A launch whose tile config `tune_shapes` may change: a mat-vec or a verify mat-mat."""

    weight: torch.Tensor
    config: MatvecConfig

    @property
    def key(self) -> str: ...


_T = TypeVar("_T", bound=_Tunable)


def tune_shapes(
    launches: Sequence[_T],
    candidates: Callable[[_T], list[MatvecConfig]],
    step_ms: Callable[[], float],
    keys: int = 8,
    progress: Callable[[str], None] = lambda line: None,
    refused: tuple[type[Exception], ...] = fk.OUT_OF_RESOURCES,
) -> dict[str, Any]:
    """Coordinate descent over tiles, timed in the whole step: for the `keys` shapes that
    stream the most bytes a step (largest first), each of `candidates(launch)` is applied to
    every launch of that shape and `step_ms()` taken; the fastest stays. A candidate whose
    step raises one of `refused` (a tile this GPU has too little shared memory or registers
    for) is skipped and reported as None. Returns {"step_ms_before", "step_ms_after", and
    per tuned shape {config: step ms or None}}."""
    by_key: dict[str, list[_T]] = {}
    for launch in launches:
        by_key.setdefault(launch.key, []).append(launch)

    def streamed(key: str) -> int:
        return sum(m.weight.numel() * m.weight.element_size() for m in by_key[key])

    report: dict[str, Any] = {"step_ms_before": step_ms()}
    for key in sorted(by_key, key=streamed, reverse=True)[:keys]:
        group = by_key[key]
        timings: list[tuple[float, MatvecConfig]] = []
        tried: dict[str, float | None] = {}
        for config in candidates(group[0]):
            for launch in group:
                launch.config = config
            try:
                ms = step_ms()
            except refused as exc:
                progress(f"{key}: {config} does not fit this GPU ({exc})")
                tried[str(asdict(config))] = None
                continue
            timings.append((ms, config))
            tried[str(asdict(config))] = ms
        if not timings:
            raise ValueError(f"{key}: no candidate tile fits this GPU: {list(tried)}")
        best_ms, best = min(timings, key=lambda item: item[0])
        for launch in group:
            launch.config = best
        report[key] = tried
        progress(f"{key}: {best} -> step {best_ms:.3f} ms")
    report["step_ms_after"] = step_ms()
    return report


def shipped_configs(device: torch.device) -> dict[str, dict[str, int]]:
    """Tile configs tuned on this GPU model and shipped with swarmlab (`tiles/<gpu>.json`,
    written from a bench run's `fused_configs`); empty when none was recorded for it."""
    if device.type != "cuda":
        return {}
    name = torch.cuda.get_device_name(device).lower().replace(" ", "-")
    path = TILES / f"{name}.json"
    return read_configs(path) if path.is_file() else {}


def read_configs(path: Path) -> dict[str, dict[str, int]]:
    """Tile configs saved in a tiles file (`tiles/*.json`, or what `benchmarks/engine_fused.py
    --tune-in-step` writes) or in a bench JSON (its first fused mode's `fused_configs`).
    OSError or ValueError (with what is wrong) when the file holds neither."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(saved.get("configs"), dict):
            return dict(saved["configs"])
        modes = saved["modes"].values()
    except (KeyError, AttributeError) as exc:
        raise ValueError(f"{path} is neither a tiles file nor a bench JSON ({exc!r})") from exc
    found = next((mode["fused_configs"] for mode in modes if "fused_configs" in mode), None)
    if not found:
        raise ValueError(f"{path} holds no fused mode's configs; run a fused mode with --json")
    return dict(found)


# The screened lm_head's exact pass: rows whose bounds one program reads at a time, and
# candidates computed together (`fk.head_verify_kernel`).
SCREEN_CHUNK = 1024
SCREEN_GROUP = 16
SCREEN_BLOCK_K = 512


@dataclass
class HeadScreen:
    """An int8 copy of the lm_head for screening (`screen_weights`): codes [N, K], one
    float32 scale a row, and each row's error radius r: for any input x, the logit the bf16
    row gives in float32 (any summation order) is within r * |x|_2 of the screen's."""

    codes: torch.Tensor
    scale: torch.Tensor
    radius: torch.Tensor


def screen_weights(weight: torch.Tensor, rows_at_once: int = 4096) -> HeadScreen:
    """Symmetric per-row int8 codes of `weight` and each row's radius.

    The screen computes s * (q . x) in float32, the exact pass w . x. Their difference is
    (w - s q) . x plus each one's float32 summation error, at most K * 2^-24 times
    |w|_2 |x|_2 and |s q|_2 |x|_2 in any order (Cauchy-Schwarz on sum |w_j x_j|), so
    r = |w - s q|_2 + K * 2^-22 * (|w|_2 + |s q|_2), taken in float64 and rounded up, covers
    both with room for the rounding of the scale product and of |x| itself."""
    k = weight.shape[1]
    slack = k * 2.0**-22
    codes, scales, radii = [], [], []
    for part in weight.detach().split(rows_at_once):
        rows = part.double()
        scale = (rows.abs().amax(dim=1).clamp(min=1e-30) / 127.0).float()
        step = scale.double()[:, None]
        q = torch.round(rows / step).clamp(-127, 127)
        grid = q * step
        radius = (rows - grid).norm(dim=1) + slack * (rows.norm(dim=1) + grid.norm(dim=1))
        codes.append(q.to(torch.int8))
        scales.append(scale)
        radii.append((radius * (1 + 2.0**-10)).float())
    return HeadScreen(torch.cat(codes), torch.cat(scales), torch.cat(radii))


def screen_programs(rows: int) -> int:
    """Programs a column of the screened lm_head's exact pass: SCREEN_CHUNK rows each."""
    return -(-rows // SCREEN_CHUNK)


class _Screened(Protocol):
    """What `head_verify_launch` reads from a screened decode or verify step."""

    model: FastDecoder
    xin: torch.Tensor
    upper: torch.Tensor
    floor: torch.Tensor
    best: torch.Tensor
    index: torch.Tensor
    seen: torch.Tensor
    use_pdl: bool


class _Merging(Protocol):
    """What `merger_launch` reads of a decode or verify step."""

    m_part: torch.Tensor
    l_part: torch.Tensor
    acc_part: torch.Tensor
    attn_out: torch.Tensor
    merge_dims: int | None
    use_pdl: bool


def head_verify_launch(step: _Screened, columns: int) -> None:
    """The exact pass after a screened lm_head (`fk.head_verify_kernel`) over `columns`
    inputs (1 for the decode step, W for the verify step)."""
    extra = {"launch_pdl": True} if step.use_pdl else {}
    lm_head = _weight(step.model.lm_head)
    rows, k = lm_head.shape
    fk.head_verify_kernel[(screen_programs(rows), columns)](
        lm_head,
        step.xin,
        step.upper,
        step.floor,
        step.best,
        step.index,
        step.seen,
        rows,
        k,
        SCREEN_CHUNK,
        float(step.model.shape.final_logit_softcapping or 0.0),
        CH=SCREEN_CHUNK,
        C=SCREEN_GROUP,
        BK=SCREEN_BLOCK_K,
        USE_PDL=step.use_pdl,
        num_warps=8,
        **extra,
    )


def _weight(module: nn.Module) -> torch.Tensor:
    """The matrix a mat-vec streams: plain weights, or the codes of an `Int8Linear`."""
    if isinstance(module, Int8Linear):
        return module.qweight
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise FusedUnsupportedError(
            f"the fused decode step needs plain or int8 weights, got {type(module).__name__}; "
            "use SWARMLAB_FAST_KERNELS=triton, torch or int8 with SWARMLAB_FAST_FUSED=1"
        )
    return weight.detach()


def _scale(module: nn.Module) -> torch.Tensor | None:
    """The per-row scales of an `Int8Linear` (None for plain weights)."""
    return module.scale if isinstance(module, Int8Linear) else None


def check_merge_dims(merge_dims: int | None) -> int | None:
    """A merge program's share of a query head's dimensions, checked (None: the whole head)."""
    if merge_dims is not None and (merge_dims < 1 or merge_dims & (merge_dims - 1)):
        raise ValueError(f"merge_dims must be a power of two or None, got {merge_dims}")
    return merge_dims


def merger_launch(step: _Merging, heads: int, head_dim: int, splits: int) -> Callable[[], None]:
    """Attention's split merge as `fused_kernels.merge_kernel` launched after the attention
    launch: for each of `heads` query heads (a verify step's are (query, head) pairs, laid
    out as the decode step's heads are), `step.merge_dims` of its dimensions a program, from
    the (max, sum, weighted values) partials of `splits` splits into `step.attn_out`."""
    chunk = min(step.merge_dims or head_dim, head_dim)
    extra = {"launch_pdl": True} if step.use_pdl else {}

    def merge() -> None:
        fk.merge_kernel[(heads, head_dim // chunk)](
            step.m_part,
            step.l_part,
            step.acc_part,
            step.attn_out,
            SPLITS=splits,
            D=head_dim,
            DC=chunk,
            USE_PDL=step.use_pdl,
            num_warps=8 if splits * chunk > 4096 else 4,
            **extra,
        )

    return merge


def finalizer_launch(
    out: torch.Tensor,
    args: dict[str, Any],
    flags: dict[str, int],
    tokens: torch.Tensor,
    columns: int,
    hidden_block: int,
    cache_hints: bool,
    use_pdl: bool,
    source: Callable[[], tuple[torch.Tensor, int, int]] | None = None,
) -> Callable[[], None]:
    """The finalizer of a mat-vec (or of a verify step's mat-mat of `columns` columns) whose
    output is `out` and launch arguments `args` / `flags`, as `fused_kernels.finalize_kernel`
    launched after it: one program a column, tokens[column] for an embedding-row residual.
    `source`, asked at each launch, may instead name (float32 partial sums, how many, the
    elements between two of them) of a mat-mat whose columns are split."""
    extra = {"launch_pdl": True} if use_pdl else {}

    def finalize() -> None:
        y, split, plane = source() if source is not None else (out, 1, 0)
        fk.finalize_kernel[(columns,)](
            y,
            tokens,
            args["res_ptr"],
            args["gpost_ptr"],
            args["scalar_ptr"],
            args["gpre_ptr"],
            args["res_out_ptr"],
            args["xin_ptr"],
            args["HID"],
            args["res_scale"],
            args["eps"],
            plane,
            F_FROM_TOKEN=flags["F_FROM_TOKEN"],
            F_HAS_DELTA=flags["F_HAS_DELTA"],
            F_HAS_SCALAR=flags["F_HAS_SCALAR"],
            F_PRE_NORM=flags["F_PRE_NORM"],
            HB=hidden_block,
            KEEP="evict_last" if cache_hints else "",
            SPLIT=split,
            USE_PDL=use_pdl,
            num_warps=FINALIZE_WARPS,
            **extra,
        )

    return finalize


class _Matvec:
    """One bound mat-vec launch; its tile config can be changed before capture."""

    def __init__(
        self,
        weight: torch.Tensor,
        out: torch.Tensor,
        rows: int,
        args: dict[str, Any],
        flags: dict[str, int],
        use_pdl: bool,
        hidden_block: int,
    ) -> None:
        self.weight, self.out, self.rows = weight, out, rows
        self.k = weight.shape[1]
        self.args, self.flags, self.use_pdl = args, flags, use_pdl
        self.config = default_config(rows, self.k)
        # Lanes for the residual stream a finalizing program rebuilds (a power of two).
        self.hidden_block = hidden_block
        # L2 hints: streamed weights evict first, norm weights last.
        self.cache_hints = False
        # matvec_kernel's SKIP_FINAL: 2 when another launch finalizes (1 only in timing
        # experiments: wrong results).
        self.skip_final = 0
        # matvec_kernel's PRO_FINAL: the previous mat-vec's finalizer as this one's prologue
        # (its configs must then keep whole rows in one column tile).
        self.pro_final = False

    def accepts(self, config: MatvecConfig) -> bool:
        """Whether this launch can run `config` (a prologue finalizer needs whole rows, the
        lm_head's screen one row block a program; split columns are the verify mat-mats'
        alone)."""
        if config.split != 1:
            return False
        if self.flags["EPI"] == fk.SCREEN and config.programs:
            return False
        return not self.pro_final or (config.block_k >= self.hidden_block and not config.programs)

    @property
    def quant(self) -> bool:
        return self.weight.dtype == torch.int8

    @property
    def key(self) -> str:
        flags = ",".join(f"{name}={value}" for name, value in sorted(self.flags.items()))
        return f"{self.rows}x{self.k}:{flags}" + (":int8" if self.quant else "")

    @property
    def blocks(self) -> int:
        """Row blocks (the lm_head leaves one maximum per block)."""
        return -(-self.rows // self.config.block_n)

    def __call__(self, weight: torch.Tensor | None = None) -> None:
        config = self.config
        if not self.accepts(config):
            raise FusedUnsupportedError(
                f"{self.key}: its finalizer prologue needs block_k >= {self.hidden_block} and "
                f"no one-wave grid, got {config}; pick a whole-row tile for this shape"
            )
        extra = {"launch_pdl": True} if self.use_pdl else {}
        grid = (config.programs or self.blocks,)
        fk.matvec_kernel[grid](
            self.weight if weight is None else weight,
            self.out,
            self.rows,
            self.k,
            **self.args,
            **self.flags,
            HB=self.hidden_block,
            BN=config.block_n,
            BK=config.block_k,
            EVEN_K=self.k % config.block_k == 0,
            USE_PDL=self.use_pdl,
            QUANT=self.quant,
            STREAM="evict_first" if self.cache_hints else "",
            KEEP="evict_last" if self.cache_hints else "",
            SKIP_FINAL=self.skip_final,
            FLAT=int(config.programs > 0),
            PRO_FINAL=self.pro_final,
            num_warps=config.warps,
            num_stages=config.stages,
            **extra,
        )


class FusedDecodeStep:
    """Every launch of one decode step of `model`, reading `token` at `position`.

    The step ends by writing the greedy next token into `token` and `history[count]` and
    advancing `position` and `count`, exactly as `GreedyRunner`'s unfused step does.
    """

    def __init__(
        self,
        model: FastDecoder,
        token: torch.Tensor,
        position: torch.Tensor,
        count: torch.Tensor,
        history: torch.Tensor,
        use_pdl: bool = False,
        splits: dict[str, int] | None = None,
        key_blocks: dict[str, int] | None = None,
        cache_hints: bool = True,
        fuse_prep: bool = True,
        attention_stages: int | None = ATTENTION_STAGES,
        attention_warps: int | None = None,
        attention_early: bool = False,
        attention_ablate: int = 0,
        attention_prewait: bool = True,
        final_ablate: int = 0,
        finalize_launch: bool = True,
        merge_launch: bool = True,
        merge_dims: int | None = MERGE_DIMS,
        ple_gate_prologue: bool = True,
        screen_head: bool = False,
    ) -> None:
        if not fk.HAVE_TRITON:
            raise FusedUnsupportedError("the fused decode step needs triton")
        if model.device.type != "cuda" and not fk.INTERPRETED:
            raise FusedUnsupportedError(
                "the fused decode step runs on CUDA (or on CPU under TRITON_INTERPRET=1)"
            )
        self.model = model
        self.use_pdl = use_pdl and model.device.type == "cuda"
        self.fuse_prep = fuse_prep
        # Attention launch experiments (None: Triton's default stages, warps by tile size).
        self.attention_stages, self.attention_warps = attention_stages, attention_warps
        # Reading the position and the first cached keys before the PDL wait builds on the
        # early loads.
        self.attention_prewait = attention_prewait
        self.attention_early = attention_early or attention_prewait
        # Timing experiments only: parts of attention left out (fused_kernels.ABLATE_*), which
        # makes the step's results wrong.
        self.attention_ablate = attention_ablate
        # A residual-producing mat-vec's finalizer as a launch of its own instead of its last
        # program (found through a counter every program updates).
        # (Timing experiments that leave finalizers out leave their launches out too.)
        self.finalize_launch = finalize_launch and not final_ablate
        # Attention's splits merged by a launch of their own instead of the last split of each
        # KV head (found through a counter).
        self.merge_launch = merge_launch
        # Output dimensions a merge program writes (None: a whole head): more, smaller
        # programs, each with fewer partials to read (prediction 32).
        self.merge_dims = check_merge_dims(merge_dims)
        # The down mat-vec's finalizer done by every program of the PLE gate mat-vec (256
        # programs) before its dot products, instead of by a launch of its own.
        self.ple_gate_prologue = ple_gate_prologue and not final_ablate
        # The lm_head read through an int8 screen, then only its candidate bf16 rows.
        self.screen: HeadScreen | None = None
        if screen_head:
            if isinstance(model.lm_head, Int8Linear):
                raise FusedUnsupportedError(
                    "screen_head screens bf16 lm_head weights with int8 codes; the lm_head is "
                    "int8 already (SWARMLAB_FAST_KERNELS=int8): leave the screen off"
                )
            self.screen = screen_weights(_weight(model.lm_head))
        self.shape = shape = model.shape
        self.token, self.position, self.count, self.history = token, position, count, history
        dtype, device = model.dtype, model.device
        self._new: Callable[..., torch.Tensor] = lambda *size, dt=dtype: torch.zeros(
            size, dtype=dt, device=device
        )
        hidden = shape.hidden_size
        head_dims = [geometry.head_dim for geometry in shape.attention.values()]
        widest = shape.num_heads * max(head_dims)
        self.splits = {kind: self._splits(kind) for kind in shape.attention} | (splits or {})
        for kind, runs in self.splits.items():
            if runs < 1 or runs & (runs - 1):
                raise ValueError(f"attention splits must be a power of two, got {kind}={runs}")
        # Keys per attention block: a split's keys at a 1k-token context (512 / 32 sliding
        # positions, 1,025 / 64 global ones) in one block, read before the PDL wait.
        self.key_blocks = {kind: 16 if fk.INTERPRETED else 32 for kind in shape.attention} | (
            key_blocks or {}
        )
        most_splits = max(self.splits.values())
        self.qkv_out = self._new(max(_weight(b.attention.qkv).shape[0] for b in self._blocks))
        self.q = self._new(widest)
        self.attn_out = self._new(widest)
        self.m_part = self._new(shape.num_heads * most_splits, dt=torch.float32)
        self.l_part = self._new(shape.num_heads * most_splits, dt=torch.float32)
        self.acc_part = self._new(shape.num_heads * most_splits, max(head_dims), dt=torch.float32)
        kv_heads = max(geometry.num_kv_heads for geometry in shape.attention.values())
        self.counters = self._new(shape.num_layers, kv_heads, dt=torch.int32)
        self.a = self._new(hidden)
        self.h = self._new(shape.intermediate_size)
        self.mlp_out = self._new(hidden)
        self.projected = self._new(hidden)
        self.xin = self._new(hidden)
        self.logits_dummy = self._new(1)
        self.launches: list[Callable[[], None]] = []
        self.tuning: dict[str, Any] = {}
        self.matvecs: list[_Matvec] = []
        self._build()
        self.set_cache_hints(cache_hints)
        # Timing experiments only: 1 leaves the finalizers' work out, 2 their counters too.
        for launch in self.matvecs:
            if final_ablate:
                launch.skip_final = final_ablate

    def set_cache_hints(self, on: bool) -> None:
        """L2 eviction hints on every mat-vec: its streamed weights evict first and the norm
        weights its finalizer reads evict last, so that the small vectors (and the KV cache
        and activations) stay resident from one step to the next. Takes effect at the next
        capture."""
        for launch in self.matvecs:
            launch.cache_hints = on

    @property
    def _blocks(self) -> list[Block]:
        return cast(list[Block], list(self.model.blocks))

    def _splits(self, kind: str) -> int:
        """Programs a KV head: 32 on sliding layers and 64 on global ones, so that at a
        1k-token context every split's keys fit the one block read before the PDL wait; with
        the merge launch 32/64 and 16/32 splits measured the same (3.039 and 3.043 ms, 8/16:
        3.125; H200, position 1024), and more splits keep long contexts spread out."""
        if fk.INTERPRETED:
            return 2
        return 32 if kind == SLIDING else 64

    def __call__(self) -> None:
        for launch in self.launches:
            launch()

    # -- building -------------------------------------------------------------------------

    def _matvec(
        self,
        weight: torch.Tensor,
        out: torch.Tensor,
        rows: int,
        x: torch.Tensor,
        *,
        embed_input: bool = False,
        final: _Final | None = None,
        epilogue: int = fk.STORE,
        scale: torch.Tensor | None = None,
        **aux: Any,
    ) -> _Matvec:
        any_tensor = weight
        counter = self._new(1, dt=torch.int32) if final is not None else any_tensor
        final_in_next = bool(aux.pop("final_in_next", False))
        args: dict[str, Any] = {
            "x_ptr": x,
            "tok_ptr": self.token,
            "res_ptr": any_tensor,
            "gpost_ptr": any_tensor,
            "scalar_ptr": any_tensor,
            "gpre_ptr": any_tensor,
            "res_out_ptr": any_tensor,
            "xin_ptr": self.xin,
            "counter_ptr": counter,
            "aux_ptr": aux.get("aux", any_tensor),
            "aux2_ptr": aux.get("aux2", any_tensor),
            "aux3_ptr": aux.get("aux3", any_tensor),
            "scale_ptr": any_tensor if scale is None else scale,
            "HID": self.shape.hidden_size,
            "res_scale": float(self.model.embed_scale),
            "out_scale": float(aux.get("out_scale", 1.0)),
            "aux_scale": float(aux.get("aux_scale", 1.0)),
            "eps": float(self.shape.rms_norm_eps),
            "aux_offset": int(aux.get("aux_offset", 0)),
            "aux_stride": int(aux.get("aux_stride", 0)),
        }
        flags = {
            "EMBED_INPUT": embed_input,
            "EPI": epilogue,
            "FINAL": final is not None,
            "F_FROM_TOKEN": False,
            "F_HAS_DELTA": False,
            "F_HAS_SCALAR": False,
            "F_PRE_NORM": False,
            "AUX_BLOCK": _pow2(rows) if epilogue == fk.PLE_GATE else 1,
        }
        if final is not None:
            args["res_ptr"], args["res_out_ptr"] = final.res, final.res_out
            flags["F_FROM_TOKEN"] = final.from_token
            if final.g_post is not None:
                flags["F_HAS_DELTA"] = True
                args["gpost_ptr"] = final.g_post
            if final.scalar is not None:
                flags["F_HAS_SCALAR"] = True
                args["scalar_ptr"] = final.scalar
            if final.g_pre is not None:
                flags["F_PRE_NORM"] = True
                args["gpre_ptr"] = final.g_pre
        launch = _Matvec(
            weight,
            out,
            rows,
            args,
            {k: int(v) for k, v in flags.items()},
            self.use_pdl,
            _pow2(self.shape.hidden_size),
        )
        self.launches.append(launch)
        self.matvecs.append(launch)
        if final is not None and final_in_next:
            launch.skip_final = 2
        elif final is not None and self.finalize_launch:
            launch.skip_final = 2
            self.launches.append(self._finalizer(launch))
        return launch

    def _finalizer(self, launch: _Matvec) -> Callable[[], None]:
        """`launch`'s finalizer as a one-program launch after it (`finalize_launch`)."""
        return finalizer_launch(
            launch.out,
            launch.args,
            launch.flags,
            self.token,
            1,
            launch.hidden_block,
            launch.cache_hints,
            self.use_pdl,
        )

    def _next_norm(self, index: int) -> torch.Tensor:
        """The RMSNorm weight in front of layer index + 1's first mat-vec."""
        blocks = self._blocks
        return blocks[index + 1].input_norm if index + 1 < len(blocks) else self.model.final_norm

    def _build(self) -> None:
        model, shape = self.model, self.shape
        hidden, ple_dim, layers = shape.hidden_size, shape.ple_dim, shape.num_layers
        if not ple_dim:
            raise FusedUnsupportedError(
                "the fused decode step needs a decoder with per-layer embeddings (Gemma-4 E2B/"
                "E4B); set SWARMLAB_FAST_FUSED=0 for this checkpoint"
            )
        # Embedding -> per-layer-embedding projection; its last program writes the residual
        # stream and layer 0's normed input.
        self.ple = self._new(layers * ple_dim)
        residual = self._new(hidden)
        self._matvec(
            _weight(model.ple_model_projection),
            self.ple,
            layers * ple_dim,
            model.embed,
            embed_input=True,
            final=_Final(
                res=model.embed,
                res_out=residual,
                from_token=True,
                g_pre=self._blocks[0].input_norm,
            ),
            epilogue=fk.SCALE,
            out_scale=hidden**-0.5,
            scale=_scale(model.ple_model_projection),
        )
        for index, block in enumerate(self._blocks):
            residual = self._layer(index, block, residual)
        cap = shape.final_logit_softcapping
        lm_head = _weight(model.lm_head)
        vocab = lm_head.shape[0]
        # Room for one partial per row: enough for any block size `tune` tries.
        self.best = self._new(vocab, dt=torch.float32)
        self.index = self._new(vocab, dt=torch.int32)
        if self.screen is None:
            head = self._matvec(
                lm_head,
                self.logits_dummy,
                vocab,
                self.xin,
                epilogue=fk.SOFTCAP_ARGMAX,
                out_scale=cap or 0.0,
                scale=_scale(model.lm_head),
                aux=self.best,
                aux2=self.index,
            )
        else:
            self.upper = self._new(vocab, dt=torch.float32)
            self.floor = torch.full((1,), float("-inf"), device=model.device)
            head = self._matvec(
                self.screen.codes,
                self.logits_dummy,
                vocab,
                self.xin,
                epilogue=fk.SCREEN,
                out_scale=cap or 0.0,
                scale=self.screen.scale,
                aux=self.upper,
                aux2=self.floor,
                aux3=self.screen.radius,
            )
        self.head = head
        if self.screen is not None:
            # Candidates each exact-pass program computed (the screen's yield).
            self.seen = self._new(self._verify_programs, dt=torch.int32)
            self.launches.append(self._head_verify)
        self.launches.append(self._finish)

    @property
    def _verify_programs(self) -> int:
        return screen_programs(self.head.rows)

    @property
    def argmax_blocks(self) -> int:
        """(max, first index) pairs the finish kernel reduces: one per lm_head row block, or
        one per program of the screened head's exact pass."""
        return self.head.blocks if self.screen is None else self._verify_programs

    def _head_verify(self) -> None:
        head_verify_launch(self, 1)

    def _layer(self, index: int, block: Block, residual: torch.Tensor) -> torch.Tensor:
        """Launches of one layer, whose input stream is `residual` (normed into self.xin);
        the residual stream it leaves (normed for the next layer into self.xin)."""
        model, shape = self.model, self.shape
        hidden = shape.hidden_size
        attention = block.attention
        qkv = _weight(attention.qkv)
        self._matvec(qkv, self.qkv_out, qkv.shape[0], self.xin, scale=_scale(attention.qkv))
        geometry = shape.attention[attention.kind]
        self._attention(index, block, geometry.head_dim, geometry.num_kv_heads)
        o_proj = _weight(attention.o_proj)
        after_attention = self._new(hidden)
        self._matvec(
            o_proj,
            self.a,
            o_proj.shape[0],
            self.attn_out,
            final=_Final(
                res=residual,
                res_out=after_attention,
                g_post=block.post_attention_norm,
                g_pre=block.pre_mlp_norm,
            ),
            scale=_scale(attention.o_proj),
        )
        self._matvec(
            _weight(block.gate_up),
            self.h,
            shape.intermediate_size,
            self.xin,
            epilogue=fk.GEGLU,
            scale=_scale(block.gate_up),
        )
        down = _weight(block.down)
        after_mlp = self._new(hidden)
        prologue = self.ple_gate_prologue
        self._matvec(
            down,
            self.mlp_out,
            down.shape[0],
            self.h,
            final=_Final(res=after_attention, res_out=after_mlp, g_post=block.post_mlp_norm),
            scale=_scale(block.down),
            final_in_next=prologue,
        )
        gated = self._new(shape.ple_dim)
        gate = self._matvec(
            _weight(block.ple_gate),
            gated,
            shape.ple_dim,
            self.mlp_out if prologue else after_mlp,
            epilogue=fk.PLE_GATE,
            aux=self.ple,
            aux2=model.ple_projection_norm,
            aux3=model.ple_embed,
            aux_offset=index * shape.ple_dim,
            aux_stride=model.ple_embed.shape[1],
            aux_scale=model.ple_scale,
            out_scale=2.0**-0.5,
            scale=_scale(block.ple_gate),
        )
        if prologue:
            # Every program rebuilds the stream after the MLP from down's output; the first
            # stores it for the PLE projection's finalizer.
            gate.pro_final = True
            gate.args["res_ptr"], gate.args["gpost_ptr"] = after_attention, block.post_mlp_norm
            gate.args["res_out_ptr"] = after_mlp
            gate.config = MatvecConfig(1, gate.hidden_block, 4)
        projection = _weight(block.ple_projection)
        after_layer = self._new(hidden)
        self._matvec(
            projection,
            self.projected,
            projection.shape[0],
            gated,
            final=_Final(
                res=after_mlp,
                res_out=after_layer,
                g_post=block.ple_norm,
                scalar=block.layer_scalar,
                g_pre=self._next_norm(index),
            ),
            scale=_scale(block.ple_projection),
        )
        return after_layer

    def _attention(self, index: int, block: Block, head_dim: int, kv_heads: int) -> None:
        attention = block.attention
        kind = attention.kind
        cache = self.model.cache
        keys, values = cache.keys[attention.source], cache.values[attention.source]
        cos, sin = self.model.rope[kind]
        slots = keys.shape[1]
        heads = self.shape.num_heads
        owns = attention.owns_cache
        use_pdl = self.use_pdl
        extra = {"launch_pdl": True} if use_pdl else {}
        qkv_out, q, eps = self.qkv_out, self.q, float(self.shape.rms_norm_eps)
        k_norm = attention.k_norm if owns else attention.q_norm
        prep_grid = (heads + (kv_heads if owns else 0),)

        def prep() -> None:
            fk.qk_prep_kernel[prep_grid](
                qkv_out,
                q,
                attention.q_norm,
                k_norm,
                keys,
                values,
                cos,
                sin,
                self.position,
                eps,
                slots,
                HEADS=heads,
                KV_HEADS=kv_heads,
                D=head_dim,
                K_EQ_V=attention.k_eq_v,
                USE_PDL=use_pdl,
                num_warps=4,
                **extra,
            )

        splits = self.splits[kind]
        group = heads // kv_heads
        block_s = self.key_blocks[kind]
        window = self.shape.sliding_window
        counters = self.counters[index]
        ieee = self.model.dtype == torch.float32
        fuse_prep = self.fuse_prep
        launch_options: dict[str, Any] = {
            "num_warps": self.attention_warps or (8 if head_dim * block_s >= 8192 else 4)
        }
        if self.attention_stages is not None:
            launch_options["num_stages"] = self.attention_stages
        early, ablate = self.attention_early, self.attention_ablate
        prewait = self.attention_prewait
        # One split a KV head writes its output itself: nothing to merge.
        merge_launch = self.merge_launch and splits > 1 and not ablate & fk.ABLATE_MERGE

        def attend() -> None:
            fk.attention_kernel[(kv_heads, splits)](
                q,
                keys,
                values,
                self.attn_out,
                self.m_part,
                self.l_part,
                self.acc_part,
                counters,
                self.position,
                qkv_out,
                attention.q_norm,
                k_norm,
                cos,
                sin,
                eps,
                slots,
                window,
                GROUP=group,
                GP=_pow2(group),
                MERGE_AT_ONCE=_pow2(group) * splits * head_dim <= MERGE_AT_ONCE_LIMIT,
                BG=max(16, _pow2(group)),
                D=head_dim,
                BS=block_s,
                SPLITS=splits,
                SLIDING=kind == SLIDING,
                PREP=fuse_prep,
                WRITE_KV=fuse_prep and owns,
                HEADS=heads,
                KV_HEADS=kv_heads,
                K_EQ_V=attention.k_eq_v,
                IEEE=ieee,
                USE_PDL=use_pdl,
                EARLY=early,
                ABLATE=ablate,
                PREWAIT=prewait,
                MERGE_LAUNCH=merge_launch,
                **launch_options,
                **extra,
            )

        self.launches += [attend] if fuse_prep else [prep, attend]
        if merge_launch:
            self.launches.append(merger_launch(self, heads, head_dim, splits))

    def _finish(self) -> None:
        extra = {"launch_pdl": True} if self.use_pdl else {}
        blocks = self.argmax_blocks
        fk.finish_kernel[(1,)](
            self.best,
            self.index,
            blocks,
            self.token,
            self.position,
            self.count,
            self.history,
            self.model.cache.slot_positions,
            self.model.cache.ring,
            self.best if self.screen is None else self.floor,
            # Every block maximum in one round of loads (16,384 with the H200 lm_head tiles).
            BLOCK=min(_pow2(blocks), FINISH_BLOCK),
            USE_PDL=self.use_pdl,
            RESET_FLOOR=self.screen is not None,
            num_warps=16 if blocks > 4096 else 4,
            **extra,
        )

    # -- tile configs -----------------------------------------------------------------------

    def configs(self) -> dict[str, dict[str, int]]:
        """The tile config of every distinct mat-vec shape (JSON-ready)."""
        return {launch.key: asdict(launch.config) for launch in self.matvecs}

    def use_configs(self, configs: dict[str, dict[str, int]]) -> int:
        """Apply saved configs to the shapes they name (those a launch can run); how many
        launches changed."""
        changed = 0
        for launch in self.matvecs:
            config = MatvecConfig(**configs[launch.key]) if launch.key in configs else None
            if config is not None and launch.accepts(config):
                launch.config = config
                changed += 1
        return changed

    def tune(self, progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
        """Time each distinct shape's candidate configs and keep the fastest.

        Each candidate runs from a CUDA graph over enough copies of the weight to exceed the
        L2 cache (a real step streams 9 GB past it), so launch gaps and cold reads count as
        they do in the step and no host launch cost does. Every mat-vec is idempotent (it
        rewrites the same outputs from the same inputs), so replaying it is safe.
        """
        best: dict[str, tuple[float, MatvecConfig]] = {}
        for launch in self.matvecs:
            if launch.key in best:
                continue
            size = launch.weight.numel() * launch.weight.element_size()
            copies = [launch.weight] + [
                launch.weight.clone() for _ in range(min(15, -(-TUNE_BYTES // size) - 1))
            ]
            timings = []
            for config in filter(launch.accepts, candidate_configs(launch.rows, launch.k)):
                launch.config = config

                def body(launch: _Matvec = launch, copies: list[torch.Tensor] = copies) -> None:
                    for weight in copies:
                        launch(weight)

                graph = capture_graph(body)
                timings.append((replay_seconds(graph) / len(copies), config))
            best[launch.key] = min(timings, key=lambda item: item[0])
            seconds, config = best[launch.key]
            progress(f"{launch.key}: {config} {seconds * 1e6:.1f} us")
        for launch in self.matvecs:
            launch.config = best[launch.key][1]
        if self.screen is not None:
            # The screen's replays raised the floor with no exact pass or finish after them.
            self.floor.fill_(float("-inf"))
        self.tuning = {
            key: {"us": seconds * 1e6, "gbs": self._bytes(key) / seconds / 1e9, **asdict(config)}
            for key, (seconds, config) in best.items()
        }
        return self.tuning

    def tune_in_step(
        self,
        keys: int = 8,
        replays: int = 20,
        progress: Callable[[str], None] = lambda line: None,
        sms: int = 0,
    ) -> dict[str, Any]:
        """Choose tiles by timing the whole captured step, one shape at a time.

        `tune()` times each shape alone over weight copies; in the step a mat-vec also
        overlaps its neighbours (PDL) and finishes with a norm, which can favour other tiles.
        For the `keys` shapes that stream the most bytes a step (largest first), each
        candidate is applied to every launch of that shape and the whole step captured and
        replayed at the current position; the fastest stays. The position and the count of
        generated tokens are put back before and after every trial, so the trials never
        write past the history or the cache. `sms` (the GPU's SM count) adds the one-wave
        candidates of `candidate_configs`. Returns {"step_ms_before", "step_ms_after", and
        per tuned shape: {config: step ms}}.
        """
        start, done = int(self.position), int(self.count)

        def rewind() -> None:
            self.position.fill_(start)
            self.count.fill_(done)

        def step_ms() -> float:
            # Capture runs the step (warm-up): rewind before the replays too, so no trial
            # writes past the history or the cache.
            rewind()
            graph = capture_graph(self)
            rewind()
            seconds = replay_seconds(graph, replays)
            rewind()
            return seconds * 1e3

        return tune_shapes(
            self.matvecs,
            lambda launch: [
                config
                for config in candidate_configs(launch.rows, launch.k, sms)
                if launch.accepts(config)
            ],
            step_ms,
            keys,
            progress,
        )

    def _bytes(self, key: str) -> int:
        launch = next(launch for launch in self.matvecs if launch.key == key)
        return launch.weight.numel() * launch.weight.element_size()
