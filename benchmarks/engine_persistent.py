"""Can one persistent Triton kernel with grid-wide barriers stream a chain of dependent
mat-vecs faster than one PDL launch per mat-vec? (one GPU)

The fused decode step launches one kernel per mat-vec with programmatic dependent launch:
each program issues its first weight tile's loads, then waits for the previous kernel
(`gdc_wait`). Its bare chain of mat-vec launches took 2.61 ms a token against 2.19 ms for the
9.27 GB of weights at 4.25 TB/s (docs/engine-performance.md, "What remains short of the
targets"). The hypothesis tested here: in ONE persistent kernel (a grid of SMs x `--per-sm`
programs looping over layers and stages) each program loads its first weight tile of the next
stage into registers *before* spinning on a grid-wide barrier, since weights do not depend on
the previous stage, so DRAM latency and ramp-up overlap the barrier instead of a kernel
boundary.

Method: a chain of bf16 mat-vecs y = W @ x (float32 accumulation, bf16 outputs) with Gemma-4
E4B's shapes, per layer qkv 3072x2560, o 2560x2048, gate+up 20480x2560, down 2560x10240, PLE
gate 256x2560, PLE projection 2560x256, `--layers` distinct random weights each (more than L2
holds), with `--lm-head` a 262144x2560 stage at the end. Each stage reads the first K entries
of the previous stage's output. Modes:

- `bytes`: the copy bandwidth of a 2 GiB device buffer (read + written), the roofline.
- `launches`: `matvec_kernel`, one launch per mat-vec with PDL, all in one CUDA graph. Tiles
  (rows, columns, warps) per shape: a one-pass coordinate search timed on the whole chain,
  starting from the fused step's shipped H200 tiles; the best tiles are timed without PDL too.
- `persistent`: `persistent_chain`, one launch (the counter zeroed before it in the graph).
  Each program streams its row blocks of a stage tile after tile with the next tile's load in
  flight (as the fused step's one-wave `FLAT` mat-vecs, prediction 22, which streamed within
  1-3% of many small programs), so that one wave keeps enough bytes in flight.
  After storing its rows of a stage a program arrives on a global counter (release atomic),
  issues the loads of its first weight tile of the next stage, then spins until the counter
  reaches (stage index + 1) x grid, with an acquire atomic (`--spin atomic`) or volatile loads
  (`--spin volatile`). Row blocks go to programs round-robin (`--order strided`) or in
  contiguous runs (`contiguous`). Tiles (rows, columns) per shape and the kernel's warps are
  coordinate-searched as for `launches`, for the first spin and order; the others are timed
  at the tiles found. Every program must be resident at once or the barrier never opens: each
  candidate's compiled kernel is checked with CUDA's occupancy calculator first, and every
  first run is guarded by a timeout.

Before timing, every timed configuration's final output on a 2-layer chain (with the lm_head
if asked) is compared to a float32 torch reference that rounds to bf16 where the kernels store
(relative error < 2e-2). `--cpu` runs only those checks on small shapes under Triton's
interpreter, with one persistent program (the interpreter runs programs one after another, so
a barrier of two never opens) and no PDL.

Usage: python benchmarks/engine_persistent.py [--modes bytes,launches,persistent]
[--layers 42] [--lm-head] [--per-sm 1,2] [--spin atomic,volatile] [--order strided,contiguous]
[--no-search | --tiles-from persistent.json] [--quick] [--out persistent.json] [--cpu]
The searches compile ~120 variants of the launch kernel and ~80 of the persistent one (a few
seconds each); where a call may take at most 10 minutes, run `--modes bytes,launches` and
`--modes bytes,persistent` apart. `--no-search` times the starting tiles only, `--tiles-from`
an earlier run's persistent tiles (no search). `--spin none` (timing only: no wait, the stages
race and the output is not checked) prices the barrier against the same kernel with one.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if "--cpu" in sys.argv:
    # Before triton is imported: triton.language decorates its own helpers at import time.
    os.environ["TRITON_INTERPRET"] = "1"

import torch
import triton
import triton.language as tl

from swarmlab.engine.fast.graphs import graph_ms

# One E4B layer's mat-vecs in order, (rows, columns): qkv, o, gate+up, down, PLE gate, PLE
# projection; and the lm_head.
LAYER = ((3072, 2560), (2560, 2048), (20480, 2560), (2560, 10240), (256, 2560), (2560, 256))
HEAD = (262144, 2560)
# The same chain in miniature for the interpreter (K = 48 and K = 16 exercise partial tiles).
SMALL_LAYER = ((96, 64), (64, 48), (128, 64), (64, 64), (16, 64), (64, 16))
SMALL_HEAD = (256, 64)
SMALL_TILE = (16, 32)

# Where the search starts, per shape: the fused step's shipped H200 tiles (gate+up's GeGLU
# tile of 2 gate and 2 up rows as 4 plain rows).
START_TILES: dict[tuple[int, int], tuple[int, int, int]] = {
    (3072, 2560): (2, 1024, 4),
    (2560, 2048): (2, 1024, 4),
    (20480, 2560): (4, 1024, 4),
    (2560, 10240): (2, 2048, 8),
    (256, 2560): (1, 4096, 4),
    (2560, 256): (8, 256, 4),
    (262144, 2560): (4, 512, 4),
}
LAUNCH_CANDIDATES = [
    (rows, cols)
    for rows in (1, 2, 4, 8, 16)
    for cols in (256, 512, 1024, 2048)
    if rows * cols <= 16384
]
# A persistent program streams one tile ahead, so its tiles are larger (more bytes in flight).
PERSISTENT_CANDIDATES = [
    (rows, cols)
    for rows in (1, 2, 4, 8, 16)
    for cols in (256, 512, 1024, 2048)
    if 2048 <= rows * cols <= 16384
]
QUICK_LAUNCH_CANDIDATES = [(2, 1024), (4, 512)]
QUICK_PERSISTENT_CANDIDATES = [(2, 2048), (8, 1024)]
# "none" (timing only, results wrong): no wait at all, to price the barrier.
SPINS = {"atomic": 0, "volatile": 1, "none": 2}
ORDERS = {"strided": 0, "contiguous": 1}
CHECK_TOLERANCE = 2e-2
HANG_SECONDS = 20.0


@triton.jit
def _first_tile(
    w_ptr,
    block,
    K: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    HINT: tl.constexpr,
):
    """Weight tile [BN, BK] at column 0 of row block `block`."""
    rows = block * BN + tl.arange(0, BN)
    cols = tl.arange(0, BK)
    ptrs = w_ptr + rows.to(tl.int64)[:, None] * K + cols[None, :]
    if K % BK == 0:
        w = tl.load(ptrs, eviction_policy=HINT)
    else:
        w = tl.load(ptrs, mask=(cols < K)[None, :], other=0.0, eviction_policy=HINT)
    return w


@triton.jit
def _row_block(
    w_ptr,
    x_ptr,
    y_ptr,
    block,
    w_first,
    K: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    HINT: tl.constexpr,
):
    """y[rows] = W[rows, :K] @ x[:K] for the BN rows of `block`, whose first weight tile the
    caller loaded. x is read from L2 (".cg") here as in the persistent kernel, where another
    SM wrote it during the launch and this SM's L1 may hold an older copy."""
    rows = block * BN + tl.arange(0, BN)
    cols = tl.arange(0, BK)
    row_ptrs = w_ptr + rows.to(tl.int64)[:, None] * K
    x = tl.load(x_ptr + cols, mask=cols < K, other=0.0, cache_modifier=".cg")
    acc = w_first.to(tl.float32) * x.to(tl.float32)[None, :]
    for start in range(BK, K, BK):
        at = start + cols
        x = tl.load(x_ptr + at, mask=at < K, other=0.0, cache_modifier=".cg")
        if K % BK == 0:
            w = tl.load(row_ptrs + at[None, :], eviction_policy=HINT)
        else:
            w = tl.load(
                row_ptrs + at[None, :], mask=(at < K)[None, :], other=0.0, eviction_policy=HINT
            )
        acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
    tl.store(y_ptr + rows, tl.sum(acc, 1).to(y_ptr.dtype.element_ty))


@triton.jit
def matvec_kernel(
    w_ptr,
    x_ptr,
    y_ptr,
    K: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    HINT: tl.constexpr,
    USE_PDL: tl.constexpr,
):
    """y = W[:, :K] @ x, one row block a program; with PDL as the fused step does it: let
    the next kernel launch at once, wait for the previous one only after issuing the first
    weight tile's loads."""
    pid = tl.program_id(0)
    if USE_PDL:
        tl.extra.cuda.gdc_launch_dependents()
    w_first = _first_tile(w_ptr, pid, K, BN, BK, HINT)
    if USE_PDL:
        tl.extra.cuda.gdc_wait()
    _row_block(w_ptr, x_ptr, y_ptr, pid, w_first, K, BN, BK, HINT)


@triton.jit
def _arrive(counter_ptr):
    """This program's rows of the stage are stored: count it in. The block barrier orders every
    thread's stores before the one thread's release."""
    tl.debug_barrier()
    tl.atomic_add(counter_ptr, 1, sem="release", scope="gpu")


@triton.jit
def _wait(counter_ptr, target, SPIN: tl.constexpr):
    """Spin until `target` arrivals: by acquire atomics (0) or by volatile loads (1). Triton
    3.6 compiles the first to one thread's `ld.acquire.gpu` (an add of 0 becomes a load),
    broadcast through shared memory between two block barriers; the second to every thread's
    `ld.volatile`, with no acquire: the x loads after it go to L2 (".cg") behind a branch on
    the value, which in practice orders them."""
    if SPIN == 0:
        seen = tl.atomic_add(counter_ptr, 0, sem="acquire", scope="gpu")
        while seen < target:
            seen = tl.atomic_add(counter_ptr, 0, sem="acquire", scope="gpu")
    elif SPIN == 1:
        seen = tl.load(counter_ptr, volatile=True)
        while seen < target:
            seen = tl.load(counter_ptr, volatile=True)


@triton.jit
def _stream_tile(
    w_ptr,
    t,
    t_end,
    first,
    step,
    N: tl.constexpr,
    K: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    HINT: tl.constexpr,
):
    """Tile t of a program's stream over a stage: column tile t % KT of its (t // KT)-th row
    block, block first + (t // KT) * step; nothing at or past t_end."""
    KT: tl.constexpr = (K + BK - 1) // BK
    j = t // KT
    rows = (first + j * step) * BN + tl.arange(0, BN)
    cols = (t - j * KT) * BK + tl.arange(0, BK)
    mask = (rows < N)[:, None] & (t < t_end)
    if K % BK != 0:
        mask = mask & (cols < K)[None, :]
    ptrs = w_ptr + rows.to(tl.int64)[:, None] * K + cols[None, :]
    return tl.load(ptrs, mask=mask, other=0.0, eviction_policy=HINT)


@triton.jit
def _persistent_stage(
    w_ptr,
    x_ptr,
    y_ptr,
    counter_ptr,
    stage,
    N: tl.constexpr,
    K: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    HINT: tl.constexpr,
    SPIN: tl.constexpr,
    ORDER: tl.constexpr,
):
    """This program's row blocks of global stage `stage`, round-robin (ORDER 0) or a
    contiguous run (1), streamed tile after tile with the next tile's load issued before this
    one's arithmetic. The first tile is loaded before waiting for every program to have
    finished the stages before (it does not depend on them); arrives when done."""
    pid = tl.program_id(0)
    programs = tl.num_programs(0)
    KT: tl.constexpr = (K + BK - 1) // BK
    blocks: tl.constexpr = N // BN
    if ORDER == 0:
        first = pid
        count = tl.cdiv(blocks - pid, programs)
        step = programs
    else:
        first = pid * blocks // programs
        count = (pid + 1) * blocks // programs - first
        step = 1
    t_end = count * KT
    w = _stream_tile(w_ptr, 0, t_end, first, step, N, K, BN, BK, HINT)
    _wait(counter_ptr, stage * programs, SPIN)
    acc = tl.zeros((BN, BK), dtype=tl.float32)
    for t in range(t_end):
        w_next = _stream_tile(w_ptr, t + 1, t_end, first, step, N, K, BN, BK, HINT)
        j = t // KT
        cols = (t - j * KT) * BK + tl.arange(0, BK)
        x = tl.load(x_ptr + cols, mask=cols < K, other=0.0, cache_modifier=".cg")
        acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
        if t - j * KT == KT - 1:
            rows = (first + j * step) * BN + tl.arange(0, BN)
            tl.store(y_ptr + rows, tl.sum(acc, 1).to(y_ptr.dtype.element_ty))
            acc = tl.zeros((BN, BK), dtype=tl.float32)
        w = w_next
    _arrive(counter_ptr)


@triton.jit
def persistent_chain(
    x_ptr,
    counter_ptr,
    W,
    Y,
    head_ptr,
    logits_ptr,
    LAYERS,
    SHAPES: tl.constexpr,
    TILES: tl.constexpr,
    HAS_HEAD: tl.constexpr,
    HEAD: tl.constexpr,
    HINT: tl.constexpr,
    SPIN: tl.constexpr,
    ORDER: tl.constexpr,
):
    """The whole chain in one launch: for each layer the stages SHAPES[s] = (rows, columns)
    with weights W[s] ([LAYERS, rows, columns]) into Y[s], tiles TILES[s] = (BN, BK); then with
    HAS_HEAD the lm_head (HEAD = (rows, columns, BN, BK)) into logits. Stage 0 reads x in
    layer 0 and the last stage's output after; counter_ptr must be 0 at launch and ends at
    the number of stages times the grid."""
    S: tl.constexpr = len(SHAPES)
    for layer in range(LAYERS):
        at = tl.cast(layer, tl.int64)
        for s in tl.static_range(S):
            if s == 0:
                src = Y[S - 1]
                if layer == 0:
                    src = x_ptr
            else:
                src = Y[s - 1]
            _persistent_stage(
                W[s] + at * (SHAPES[s][0] * SHAPES[s][1]),
                src,
                Y[s],
                counter_ptr,
                layer * S + s,
                SHAPES[s][0],
                SHAPES[s][1],
                TILES[s][0],
                TILES[s][1],
                HINT,
                SPIN,
                ORDER,
            )
    if HAS_HEAD:
        _persistent_stage(
            head_ptr,
            Y[S - 1],
            logits_ptr,
            counter_ptr,
            LAYERS * S,
            HEAD[0],
            HEAD[1],
            HEAD[2],
            HEAD[3],
            HINT,
            SPIN,
            ORDER,
        )


@dataclass
class Chain:
    """A chain's weights ([layers, rows, columns] per stage of a layer, then the lm_head's) and
    buffers (one output per stage, reused by every layer)."""

    shapes: tuple[tuple[int, int], ...]
    weights: list[torch.Tensor]
    outs: list[torch.Tensor]
    x: torch.Tensor
    head: torch.Tensor | None = None
    logits: torch.Tensor | None = None

    @property
    def layers(self) -> int:
        return self.weights[0].shape[0]

    @property
    def nbytes(self) -> int:
        matrices = [*self.weights, *([self.head] if self.head is not None else [])]
        return sum(w.numel() * w.element_size() for w in matrices)

    @property
    def result(self) -> torch.Tensor:
        return self.logits if self.logits is not None else self.outs[-1]

    def steps(self) -> list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(stage, weight [rows, columns], input buffer, output) of every mat-vec in order;
        stage len(shapes) is the lm_head."""
        found = []
        for layer in range(self.layers):
            for stage, weight in enumerate(self.weights):
                source = self.outs[stage - 1] if stage or layer else self.x
                found.append((stage, weight[layer], source, self.outs[stage]))
        if self.head is not None and self.logits is not None:
            found.append((len(self.shapes), self.head, self.outs[-1], self.logits))
        return found


def make_chain(
    shapes: Sequence[tuple[int, int]],
    layers: int,
    head: tuple[int, int] | None,
    device: torch.device,
    dtype: torch.dtype,
    seed: int = 0,
) -> Chain:
    """Random weights scaled by 1/sqrt(columns), so activations stay near 1 along the chain.
    ValueError when a stage's output is shorter than the next stage's input."""
    shapes = tuple(shapes)
    inputs = [k for _, k in shapes[1:]] + ([shapes[0][1]] if layers > 1 else [])
    feeds = [n for n, _ in shapes[: len(inputs)]]
    if head is not None:
        inputs, feeds = [*inputs, head[1]], [*feeds, shapes[-1][0]]
    for rows, columns in zip(feeds, inputs, strict=True):
        if rows < columns:
            raise ValueError(f"a {rows}-row stage cannot feed a {columns}-column one: {shapes}")
    generator = torch.Generator(device=device).manual_seed(seed)

    def matrix(*size: int) -> torch.Tensor:
        w = torch.randn(*size, generator=generator, device=device, dtype=dtype)
        return w.mul_(size[-1] ** -0.5)

    weights = [matrix(layers, n, k) for n, k in shapes]
    outs = [torch.zeros(n, device=device, dtype=dtype) for n, _ in shapes]
    x = torch.randn(shapes[0][1], generator=generator, device=device, dtype=dtype)
    if head is None:
        return Chain(shapes, weights, outs, x)
    logits = torch.zeros(head[0], device=device, dtype=dtype)
    return Chain(shapes, weights, outs, x, matrix(*head), logits)


def reference(chain: Chain) -> torch.Tensor:
    """The chain's final output in float32, rounded to the chain's dtype where kernels store."""
    x = chain.x.float()
    for _, weight, _, out in chain.steps():
        x = (weight.float() @ x[: weight.shape[1]]).to(out.dtype).float()
    return x


def relative_error(chain: Chain, run: Callable[[], object], guard: bool) -> float:
    """Run once on NaN-filled outputs; ||got - want|| / ||want|| of the final output. With
    `guard` (CUDA), a run that does not finish in HANG_SECONDS ends the process: a persistent
    grid that is not all resident spins forever."""
    for out in [*chain.outs, chain.result]:
        out.fill_(float("nan"))
    run()
    if guard and not finished(HANG_SECONDS):
        print(f"the kernel did not finish in {HANG_SECONDS:.0f} s: barrier deadlock", flush=True)
        os._exit(3)
    got = chain.result.float()
    want = reference(chain)
    return float((got - want).norm() / want.norm())


def finished(seconds: float) -> bool:
    """Whether the current stream's work so far finishes within `seconds`."""
    done = torch.cuda.Event()
    done.record()
    deadline = time.monotonic() + seconds
    while not done.query():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def launch_warps(rows: int, cols: int) -> int:
    return 4 if rows * cols <= 4096 else 8


def matvec_launches(
    chain: Chain, tiles: Sequence[tuple[int, int, int]], pdl: bool, hint: str, stages: int
) -> list[Callable[[], None]]:
    """One `matvec_kernel` launch per mat-vec; tiles[stage] = (rows, columns, warps)."""
    launches: list[Callable[[], None]] = []
    extra = {"launch_pdl": True} if pdl else {}
    for stage, weight, source, out in chain.steps():
        n, k = weight.shape
        bn, bk, warps = tiles[stage]
        launches.append(
            functools.partial(
                matvec_kernel[(n // bn,)],
                weight,
                source,
                out,
                K=k,
                BN=bn,
                BK=bk,
                HINT=hint,
                USE_PDL=pdl,
                num_warps=warps,
                num_stages=stages,
                **extra,
            )
        )
    return launches


@dataclass
class Persistent:
    """One `persistent_chain` launch over `chain` (the counter zeroed first), callable."""

    chain: Chain
    tiles: Sequence[tuple[int, int]]  # per stage, then the lm_head's
    programs: int
    warps: int = 4
    stages: int = 4
    spin: str = "atomic"
    order: str = "strided"
    hint: str = "evict_first"
    counter: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.counter = torch.zeros(1, dtype=torch.int32, device=self.chain.x.device)

    def _arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        chain, count = self.chain, len(self.chain.shapes)
        head = chain.head if chain.head is not None else chain.x
        logits = chain.logits if chain.logits is not None else chain.x
        head_tile = tuple(self.tiles[count]) if chain.head is not None else (1, 1)
        positional = (chain.x, self.counter, tuple(chain.weights), tuple(chain.outs), head, logits)
        return (*positional, chain.layers), {
            "SHAPES": chain.shapes,
            "TILES": tuple(tuple(tile) for tile in self.tiles[:count]),
            "HAS_HEAD": chain.head is not None,
            "HEAD": (*head.shape, *head_tile) if chain.head is not None else (1, 1, 1, 1),
            "HINT": self.hint,
            "SPIN": SPINS[self.spin],
            "ORDER": ORDERS[self.order],
            "num_warps": self.warps,
            "num_stages": self.stages,
        }

    @property
    def arrivals(self) -> int:
        """The counter after a complete run: every program arrives once a stage."""
        stages = self.chain.layers * len(self.chain.shapes) + (self.chain.head is not None)
        return stages * self.programs

    def __call__(self) -> None:
        positional, keywords = self._arguments()
        self.counter.zero_()
        persistent_chain[(self.programs,)](*positional, **keywords)

    def compiled(self) -> Any:
        """The compiled kernel (CUDA), without launching it."""
        positional, keywords = self._arguments()
        kernel = persistent_chain.warmup(*positional, grid=(self.programs,), **keywords)
        if hasattr(kernel, "result"):  # compiled asynchronously
            kernel = kernel.result()
        kernel._init_handles()
        return kernel


def resident_per_sm(kernel: Any) -> tuple[int, str]:
    """How many programs of `kernel` one SM holds at once: CUDA's occupancy calculator, or
    (without it) an estimate from registers, shared memory and threads."""
    threads = kernel.metadata.num_warps * 32
    shared = kernel.metadata.shared
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        blocks = ctypes.c_int()
        error = libcuda.cuOccupancyMaxActiveBlocksPerMultiprocessor(
            ctypes.byref(blocks), ctypes.c_void_p(kernel.function), threads, ctypes.c_size_t(shared)
        )
        if error == 0:
            return blocks.value, "cuOccupancyMaxActiveBlocksPerMultiprocessor"
    except (OSError, AttributeError):
        pass
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    registers = getattr(props, "regs_per_multiprocessor", 65536)
    smem = getattr(props, "shared_memory_per_multiprocessor", 233472)
    per_warp = -(-kernel.n_regs // 8) * 8 * 32  # allocated in 256-register units per warp
    by_regs = registers // (per_warp * kernel.metadata.num_warps)
    by_smem = smem // (shared + 1024)  # the driver reserves 1 KB per block
    return min(by_regs, by_smem, 2048 // threads, 32), "estimate"


def copy_tbs() -> float:
    """Device copy bandwidth (2 GiB, bytes read plus written, TB/s) as `swarmlab engine bench`
    measures it, the figure the issue's roofline uses (a copy captured in a CUDA graph measured
    2.77 TB/s on the H200 against 4.2-4.3 for the same copy launched eagerly)."""
    from swarmlab.engine.bench import copy_bandwidth

    return copy_bandwidth(torch.device("cuda")) / 1e3


def coordinate_search(
    start: list[Any],
    options: Sequence[Sequence[Any]],
    time_ms: Callable[[list[Any]], float],
    label: Callable[[list[Any]], str],
) -> tuple[list[Any], float, list[dict[str, Any]]]:
    """One pass over the coordinates: each takes the option that times best with the others
    held. `time_ms` returns inf for a candidate that cannot run; one that raises (a tile the
    compiler refuses) is reported and skipped."""
    best, best_ms = list(start), time_ms(start)
    tried = [{"choice": label(best), "ms": best_ms if best_ms < float("inf") else None}]
    print(f"    {label(best)}: {best_ms:.3f} ms", flush=True)
    for index, choices in enumerate(options):
        for choice in choices:
            trial = [*best[:index], choice, *best[index + 1 :]]
            if choice == best[index]:
                continue
            try:
                ms = time_ms(trial)
            except Exception as exc:
                print(f"    {label(trial)}: {exc!r:.160}", flush=True)
                ms = float("inf")
            tried.append({"choice": label(trial), "ms": ms if ms < float("inf") else None})
            if ms < best_ms:
                best, best_ms = trial, ms
                print(f"    {label(best)}: {best_ms:.3f} ms", flush=True)
    return best, best_ms, tried


def candidates(shape: tuple[int, int], pool: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (rows, columns) tiles of `pool` that divide the rows and are no wider than needed."""
    rows, cols = shape
    widest = triton.next_power_of_2(cols)
    return [(bn, bk) for bn, bk in pool if rows % bn == 0 and bk <= widest]


def stage_shapes(chain: Chain) -> list[tuple[int, int]]:
    """(rows, columns) of each stage of a layer, then of the lm_head."""
    head = [(chain.head.shape[0], chain.head.shape[1])] if chain.head is not None else []
    return [*chain.shapes, *head]


def start_tiles(shapes: Sequence[tuple[int, int]], cpu: bool) -> list[tuple[int, int, int]]:
    if cpu:
        return [(*SMALL_TILE, 4) for _ in shapes]
    return [START_TILES.get(s, (2, min(1024, triton.next_power_of_2(s[1])), 4)) for s in shapes]


def persistent_start(shapes: Sequence[tuple[int, int]], cpu: bool) -> list[tuple[int, int]]:
    """Two rows a tile (balance: a stage's blocks over one wave), up to 2048 columns."""
    if cpu:
        return [SMALL_TILE for _ in shapes]
    return [(2, min(2048, triton.next_power_of_2(k))) for _, k in shapes]


def measure(name: str, ms: float, chain: Chain, copy: float | None) -> dict[str, Any]:
    tbs = chain.nbytes / ms / 1e9
    row: dict[str, Any] = {"ms": ms, "gb": chain.nbytes / 1e9, "tbs": tbs}
    share = ""
    if copy:
        row["roofline_pct"] = 100 * tbs / copy
        share = f", {row['roofline_pct']:.1f}% of the copy roofline"
    print(f"  {name}: {ms:.3f} ms a chain, {row['gb']:.2f} GB, {tbs:.2f} TB/s{share}", flush=True)
    return row


def check_launches(
    check: Chain, tiles: list[tuple[int, int, int]], pdl: bool, args: argparse.Namespace
) -> float:
    """The launch chain's relative error on the check chain; AssertionError when wrong."""
    launches = matvec_launches(check, tiles, pdl, args.hint, args.stages)
    err = relative_error(check, lambda: [launch() for launch in launches], False)
    print(f"launches: check relative error {err:.2e} (tiles {tiles})", flush=True)
    if err > CHECK_TOLERANCE:
        raise AssertionError(f"launch chain differs from the reference: {err:.3e}")
    return err


def run_launches(
    chain: Chain, check: Chain, args: argparse.Namespace, copy: float | None
) -> dict[str, Any]:
    """Check, search (unless --no-search), check the tiles found and time the
    launch-per-mat-vec chain, with PDL and without."""
    cpu, shapes = args.cpu, stage_shapes(chain)
    pdl = not cpu
    tiles = start_tiles(shapes, cpu)

    def time_ms(trial: list[tuple[int, int, int]]) -> float:
        return graph_ms(matvec_launches(chain, trial, pdl, args.hint, args.stages), args.steps)

    report: dict[str, Any] = {"check_rel_err": check_launches(check, tiles, pdl, args)}
    if not cpu and not args.no_search:
        pool = QUICK_LAUNCH_CANDIDATES if args.quick else LAUNCH_CANDIDATES
        options = [[(*t, launch_warps(*t)) for t in candidates(s, pool)] for s in shapes]
        print("launches: coordinate search over tiles (rows, columns, warps) per shape")
        found, _, report["search"] = coordinate_search(tiles, options, time_ms, str)
        if found != tiles:
            tiles, report["check_rel_err"] = found, check_launches(check, found, pdl, args)
    report["tiles"] = {f"{n}x{k}": list(tile) for (n, k), tile in zip(shapes, tiles, strict=True)}
    if not cpu:
        report["pdl"] = measure("launches, PDL", time_ms(tiles), chain, copy)
        no_pdl = graph_ms(matvec_launches(chain, tiles, False, args.hint, args.stages), args.steps)
        report["no_pdl"] = measure("launches, no PDL", no_pdl, chain, copy)
    return report


def residency(run: Persistent) -> dict[str, Any]:
    """What `run`'s compiled kernel needs, and whether its grid is resident all at once (a
    barrier waits for every program: one left waiting for an SM never arrives)."""
    kernel = run.compiled()
    per_sm, how = resident_per_sm(kernel)
    sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    needs = {"regs": kernel.n_regs, "spills": kernel.n_spills, "shared": kernel.metadata.shared}
    return needs | {"resident_per_sm": per_sm, "by": how, "fits": per_sm * sms >= run.programs}


def persistent_ms(run: Persistent, steps: int) -> float:
    """ms of a CUDA graph of `run`; inf when its grid would not be resident at once."""
    needs = residency(run)
    if not needs["fits"]:
        print(f"    {run.warps} warps {list(run.tiles)}: not resident ({needs})", flush=True)
        return float("inf")
    run()
    if not finished(HANG_SECONDS):
        print(f"the persistent kernel hung ({needs}): barrier deadlock", flush=True)
        os._exit(3)
    return graph_ms([run], steps)


def check_persistent(check: Chain, run: Persistent, cpu: bool) -> dict[str, Any]:
    """Run `run`'s configuration on the check chain: its relative error, the counter's final
    value (every program arrives once a stage) and, on CUDA, what its kernel needs; AssertionError
    when wrong. Not run (row["fits"] False) when the grid would not be resident."""
    checked = dataclasses.replace(run, chain=check)
    row: dict[str, Any] = {} if cpu else residency(checked)
    if not row.get("fits", True):
        return row
    row["check_rel_err"] = err = relative_error(check, checked, guard=not cpu)
    arrived = int(checked.counter.item())
    print(f"persistent {run.spin}, {run.order}: check relative error {err:.2e}, {arrived} arrivals")
    if run.spin == "none":
        row["timing_only"] = True  # no barrier: the stages race, the output is meaningless
        return row
    if err > CHECK_TOLERANCE or arrived != checked.arrivals:
        raise AssertionError(f"persistent chain: error {err:.3e}, {arrived} arrivals")
    return row


def run_persistent(
    chain: Chain, check: Chain, args: argparse.Namespace, copy: float | None, per_sm: int
) -> dict[str, Any]:
    """Search (unless --no-search), check and time the persistent chain with per_sm programs
    an SM; the first spin and order are searched, every combination is checked and timed."""
    cpu, shapes = args.cpu, stage_shapes(chain)
    sms = 1 if cpu else torch.cuda.get_device_properties(0).multi_processor_count
    programs = 1 if cpu else sms * per_sm
    coordinates: list[Any] = [4, *persistent_start(shapes, cpu)]
    spins, orders = args.spin.split(","), args.order.split(",")
    base = {"programs": programs, "stages": args.stages, "hint": args.hint}
    report: dict[str, Any] = {"programs": programs, "variants": {}}

    def time_ms(trial: list[Any]) -> float:
        first = base | {"spin": spins[0], "order": orders[0]}
        return persistent_ms(Persistent(chain, trial[1:], warps=trial[0], **first), args.steps)

    if args.tiles_from:
        found = json.loads(args.tiles_from.read_text())["modes"][f"persistent_{per_sm}_per_sm"]
        coordinates = [found["warps"], *(found["tiles"][f"{n}x{k}"] for n, k in shapes)]
    elif not cpu and not args.no_search:
        pool = QUICK_PERSISTENT_CANDIDATES if args.quick else PERSISTENT_CANDIDATES
        options: list[list[Any]] = [[4] if args.quick else [4, 8]]
        options += [candidates(shape, pool) for shape in shapes]
        first = base | {"spin": spins[0], "order": orders[0]}
        start = Persistent(chain, coordinates[1:], warps=coordinates[0], **first)
        report["start_check"] = check_persistent(check, start, cpu)
        print(f"persistent ({programs} programs): coordinate search over warps, then tiles")
        coordinates, _, report["search"] = coordinate_search(coordinates, options, time_ms, str)
    warps, tiles = coordinates[0], coordinates[1:]
    report["warps"] = warps
    report["tiles"] = {f"{n}x{k}": list(t) for (n, k), t in zip(shapes, tiles, strict=True)}
    for spin in spins:
        for order in orders:
            name = f"{spin}, {order}"
            run = Persistent(chain, tiles, warps=warps, **base, spin=spin, order=order)
            row = report["variants"][name] = check_persistent(check, run, cpu)
            if not cpu and row["fits"]:
                ms = persistent_ms(run, args.steps)
                row |= measure(f"persistent, {programs} programs, {name}", ms, chain, copy)
            elif not cpu:
                print(f"persistent {name}: {programs} programs are not resident at once ({row})")
    return report


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="bytes,launches,persistent", help="comma-separated")
    parser.add_argument("--layers", type=int, help="default 42, 12 with --quick, 2 with --cpu")
    parser.add_argument("--lm-head", action="store_true", help="a 262144x2560 stage at the end")
    parser.add_argument("--per-sm", default="1", help="persistent programs an SM: 1, 2 or 1,2")
    parser.add_argument("--spin", default="atomic,volatile", help="how the barrier polls")
    parser.add_argument("--order", default="strided,contiguous", help="row blocks to programs")
    parser.add_argument(
        "--hint", default="evict_first", help="weight loads' eviction policy, or none"
    )
    parser.add_argument("--stages", type=int, default=4, help="num_stages of the column loops")
    parser.add_argument("--steps", type=int, default=20, help="graph replays a timing")
    parser.add_argument("--no-search", action="store_true", help="time the starting tiles only")
    parser.add_argument(
        "--tiles-from", type=Path, help="an earlier --out file: its persistent warps and tiles"
    )
    parser.add_argument("--quick", action="store_true", help="12 layers, two tiles a shape")
    parser.add_argument("--out", type=Path, help="write every result as JSON")
    parser.add_argument("--cpu", action="store_true", help="checks only, under the interpreter")
    args = parser.parse_args(argv)
    if args.layers is None:
        args.layers = 2 if args.cpu else 12 if args.quick else 42
    if args.hint == "none":
        args.hint = ""
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    modes = args.modes.split(",")
    device = torch.device("cpu" if args.cpu else "cuda")
    # float32 under the interpreter (numpy has no bf16).
    dtype = torch.float32 if args.cpu else torch.bfloat16
    shapes, last = (SMALL_LAYER, SMALL_HEAD) if args.cpu else (LAYER, HEAD)
    head = last if args.lm_head else None
    chain = make_chain(shapes, args.layers, head, device, dtype)
    check = make_chain(shapes, min(2, args.layers), head, device, dtype, seed=1)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "modes": {}}
    report["chain"] = {"layers": args.layers, "gb": chain.nbytes / 1e9, "lm_head": bool(head)}
    if not args.cpu:
        report["device"] = torch.cuda.get_device_name()
    print(f"chain: {args.layers} layers x {len(shapes)} mat-vecs, {chain.nbytes / 1e9:.2f} GB")
    copy = None
    if "bytes" in modes and not args.cpu:
        copy = copy_tbs()
        report["modes"]["bytes"] = {"copy_tbs": copy, "roofline_ms": chain.nbytes / copy / 1e9}
        print(f"  bytes: copy {copy:.2f} TB/s, roofline {chain.nbytes / copy / 1e9:.3f} ms")
    if "launches" in modes:
        report["modes"]["launches"] = run_launches(chain, check, args, copy)
    if "persistent" in modes:
        for per_sm in (int(part) for part in args.per_sm.split(",")):
            found = run_persistent(chain, check, args, copy, per_sm)
            report["modes"][f"persistent_{per_sm}_per_sm"] = found
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
