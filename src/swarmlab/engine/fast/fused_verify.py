"""The fused verify step: W tokens of a Gemma-4 decoder in 12 Triton launches a layer (8 with
the finalizers inside the mat-mats and the merge inside attention), every weight read once.

Speculative decoding verifies K drafts with one step over W = K + 1 tokens at consecutive
positions; the fused decode step (`fused.py`) is latency-bound, so a step that streams the same
weights once for W tokens should cost little more than it. `FusedVerifyStep` is that step, laid
out like `FusedDecodeStep` from a `FastDecoder`'s own weights, rope tables and KV cache (shared,
not copied). Per layer:

1. qkv mat-mat (`matmat_kernel`: weight tiles times the W columns, `tl.dot`; with
   `tensor_cores=False`, float32 products per column as the decode step's mat-vec does);
2. q/k prep (`verify_prep_kernel`): the W queries normed and rotated into a buffer, the W new
   keys and values into the cache (layers that own one);
3. attention (`verify_attention_kernel`): split-KV flash decoding over (KV head, split, chunk
   of queries), every query masked to the positions it sees, this step's keys included;
   then the decode step's `merge_kernel` merges the splits, one program a (query, head);
4. o, then its finalizer (`fused_kernels.finalize_kernel`, one program a column): the residual
   stream and the MLP's normed input of every column; 5. gate+up with GeGLU; 6. down, then
   its finalizer (residual); 7. PLE gate (each column's own token); 8. PLE projection, then
   its finalizer (residual, layer scalar, the next layer's normed input).

With `finalize_launch=False` the last program of each of those mat-mats finalizes instead, and
with `merge_launch=False` the last split of each (KV head, chunk) merges, each found through a
counter (the decode step's former layout; predictions 23 and 25 of docs/engine-performance.md
found the counters costly there). Before the layers the per-layer-embedding projection reads
the W embedding rows (its finalizer writes the residual streams and layer 0's input); after
them the lm_head keeps each column's softcapped block maxima and `verify_finish_kernel` writes
the greedy token after each position into `out` and the W positions into the ring's position
map. So one call computes exactly `FastDecoder.forward(ids, positions)`, into the same cache,
in 12 * layers + 4 launches (8 * layers + 3 without finalize and merge launches; no merge on
layers whose attention has one split).

Positions are consecutive (pos..pos+W-1, as every caller passes them); W may be 1..16 and at
most the cache's `max_step_tokens`, so the W keys go straight into the sliding ring without
overwriting a position any query still sees. Mat-mat tiles come from `default_config` and can
be replaced with `use_configs` like the decode step's; `tune_in_step` chooses them per shape by
timing the whole step. Their keys leave out the width, so tiles tuned at one width apply to
every width with the same padded column count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, cast

import torch

from swarmlab.engine.fast import fused_kernels as fk
from swarmlab.engine.fast import fused_verify_kernels as fvk
from swarmlab.engine.fast.config import SLIDING
from swarmlab.engine.fast.fused import (
    FINISH_BLOCK,
    MERGE_DIMS,
    FusedUnsupportedError,
    HeadScreen,
    MatvecConfig,
    _Final,
    _pow2,
    _scale,
    _weight,
    check_merge_dims,
    finalizer_launch,
    head_verify_launch,
    merger_launch,
    screen_programs,
    tune_shapes,
)
from swarmlab.engine.fast.fused import default_config as matvec_config
from swarmlab.engine.fast.graphs import capture_graph, replay_seconds
from swarmlab.engine.fast.model import Block, FastDecoder

# The widest step: its columns are padded to a power of two for `tl.dot`, at least 16.
MAX_WIDTH = 16

# Float32 values a prep-free attention program keeps for its rows (queries x heads x dims):
# more rows are split into chunks of queries, each a program of its own.
ATTENTION_ROW_VALUES = 16384

# Float32 values of one finalizer chunk (columns x hidden elements).
FINAL_CHUNK_VALUES = 4096


def default_config(rows: int, k: int) -> MatvecConfig:
    """Mat-mat tile: 32 weight rows by 256 columns, the fastest of `engine_fused.py
    --verify-tiles`' candidates applied to every mat-mat at once for widths 2 to 5 on an
    H200 (W = 2: 4.96 ms a verify step against 5.71 with 16 rows); on CPU, under the
    interpreter, as few programs as possible. `use_configs` replaces it per shape."""
    if fk.INTERPRETED:
        return MatvecConfig(max(16, min(64, _pow2(rows))), max(16, min(256, _pow2(k))), 4)
    return MatvecConfig(32, max(16, min(256, _pow2(k))), 4)


# Mat-mat tiles (weight rows a program, columns a tile, warps, stages) that `candidate_configs`
# offers the in-step tuner besides the default; `tl.dot` takes 16 rows at least.
MATMAT_TILES: tuple[tuple[int, int, int, int], ...] = (
    (16, 128, 4, 4),
    (16, 256, 4, 4),
    (16, 512, 8, 3),
    (32, 128, 4, 3),
    (32, 128, 4, 4),
    (32, 256, 8, 4),
    (32, 512, 8, 3),
    (64, 128, 4, 3),
    (64, 128, 4, 5),
    (64, 128, 8, 3),
    (64, 256, 4, 5),
    (128, 128, 4, 3),
    # One stage: no shared-memory pipeline, the tile goes through registers as in the
    # decode step's mat-vecs, so more programs fit an SM.
    (16, 256, 4, 1),
    (32, 256, 4, 1),
    (32, 512, 8, 1),
)


# Column splits `candidate_configs` offers a splittable mat-mat, on these tiles of MATMAT_TILES
# (and the default): few weight rows make few programs (2,560-row o and down: 80 of 32 rows),
# and smaller tiles stream worse, so the columns are cut instead. A bare mat-mat of down's
# shape streams at 3.5 TB/s on an H200 with 64 x 256 tiles, 5 stages, split 2, and at 2.1
# unsplit (benchmarks/engine_matmat.py).
SPLITS = (2, 4, 8)
SPLIT_TILES: tuple[tuple[int, int, int, int], ...] = (
    (16, 256, 4, 4),
    (16, 256, 4, 1),
    (32, 128, 4, 4),
    (32, 256, 4, 1),
    (32, 256, 4, 3),
    (64, 128, 4, 5),
    (64, 128, 8, 3),
    (64, 256, 4, 5),
)

# The most column splits a mat-mat may take (its partials buffer holds this many).
MAX_SPLIT = max(SPLITS)

# Rows of gate+up a program of `geglu_reduce_kernel` finishes (after a split gate+up).
GEGLU_BLOCK = 1024


def candidate_configs(rows: int, k: int, splittable: bool = False) -> list[MatvecConfig]:
    """The default tile and MATMAT_TILES' that fit the shape (columns a tile at most the
    next power of two of k; at least two row blocks, so no shape runs as one program); for a
    `splittable` mat-mat also the default and SPLIT_TILES' tiles with each of SPLITS that
    divides k into whole tiles."""
    seen = [default_config(rows, k)]
    for block_n, block_k, warps, stages in MATMAT_TILES:
        config = MatvecConfig(block_n, block_k, warps, stages)
        if block_k <= max(16, _pow2(k)) and -(-rows // block_n) >= 2 and config not in seen:
            seen.append(config)
    if splittable:
        bases = [seen[0]] + [MatvecConfig(*tile) for tile in SPLIT_TILES]
        for base in bases:
            for split in SPLITS:
                config = replace(base, split=split)
                if k % (split * base.block_k) == 0 and config not in seen:
                    seen.append(config)
    return seen


# Float32 products a program of the mat-mat's FMA variant keeps (rows x columns a tile x
# activation columns), like the decode step's mat-vec tiles of 4,096-8,192 values.
FMA_TILE_VALUES = 8192


def fma_config(rows: int, k: int, columns: int) -> MatvecConfig:
    """Tile of the mat-mat without tensor cores (`tensor_cores=False`): the decode step's
    mat-vec tile for this shape, its columns narrowed until rows x columns x the W activation
    columns (padded to a power of two) fit FMA_TILE_VALUES. Untimed."""
    config = matvec_config(rows, k)
    block_k = config.block_k
    while block_k > 16 and config.block_n * block_k * columns > FMA_TILE_VALUES:
        block_k //= 2
    values = config.block_n * block_k * columns
    return MatvecConfig(config.block_n, block_k, 8 if values > 4096 else 4)


class _Matmat:
    """One bound mat-mat launch; its tile config can be changed before capture."""

    def __init__(
        self,
        weight: torch.Tensor,
        out: torch.Tensor,
        rows: int,
        args: dict[str, Any],
        flags: dict[str, int],
        use_pdl: bool,
        partials: torch.Tensor | None = None,
    ) -> None:
        self.weight, self.out, self.rows = weight, out, rows
        self.k = weight.shape[1]
        self.args, self.flags, self.use_pdl = args, flags, use_pdl
        self.config = (
            default_config(rows, self.k) if flags["DOT"] else fma_config(rows, self.k, flags["WP"])
        )
        self.cache_hints = False
        # Float32 partial sums of a split config ([MAX_SPLIT, W, rows (x2 for GEGLU)]), given
        # to a mat-mat whose consumer can add them: None where the columns are never split.
        self.partials = partials

    @property
    def splittable(self) -> bool:
        return self.partials is not None

    def accepts(self, config: MatvecConfig) -> bool:
        """Whether this launch can run `config`: split columns only where a consumer adds
        the partials, in whole tiles, and at most MAX_SPLIT of them."""
        if config.split == 1:
            return True
        whole = self.k % (config.split * config.block_k) == 0
        return self.splittable and whole and 1 < config.split <= MAX_SPLIT

    def output(self) -> tuple[torch.Tensor, int, int]:
        """What the consumer reads: (the output, 1, 0), or with split columns (the float32
        partials, how many, elements between two of them)."""
        split = self.config.split
        if split == 1:
            return self.out, 1, 0
        assert self.partials is not None  # accepts() lets only splittable launches split
        return self.partials, split, self.flags["W"] * self.rows

    @property
    def quant(self) -> bool:
        return self.weight.dtype == torch.int8

    @property
    def key(self) -> str:
        """The shape and flags but the width W (its padded WP stays): configs are saved and
        applied by this name, so tiles tuned at one width serve every width of that WP."""
        flags = ",".join(
            f"{name}={value}" for name, value in sorted(self.flags.items()) if name != "W"
        )
        return f"{self.rows}x{self.k}:{flags}" + (":int8" if self.quant else "")

    @property
    def blocks(self) -> int:
        return -(-self.rows // self.config.block_n)

    def __call__(self) -> None:
        config = self.config
        if not self.accepts(config):
            raise FusedUnsupportedError(
                f"{self.key}: {config} splits its columns where no consumer adds the partials, "
                f"or not into whole tiles of {config.block_k}, or more than {MAX_SPLIT} times"
            )
        extra = {"launch_pdl": True} if self.use_pdl else {}
        fvk.matmat_kernel[(self.blocks, config.split)](
            self.weight,
            self.out,
            self.rows,
            self.k,
            **self.args,
            part_ptr=self.out if self.partials is None else self.partials,
            **self.flags,
            BN=config.block_n,
            BK=config.block_k,
            EVEN_K=self.k % config.block_k == 0,
            USE_PDL=self.use_pdl,
            QUANT=self.quant,
            STREAM="evict_first" if self.cache_hints else "",
            KEEP="evict_last" if self.cache_hints else "",
            SPLIT=config.split,
            num_warps=config.warps,
            num_stages=config.stages,
            **extra,
        )
        if config.split > 1 and self.flags["EPI"] == fvk.GEGLU:
            # gelu(gate) * up from the partials: a launch of its own after a split gate+up.
            block = min(GEGLU_BLOCK, _pow2(self.rows))
            fvk.geglu_reduce_kernel[(-(-self.rows // block), self.flags["W"])](
                self.partials,
                self.out,
                self.rows,
                W=self.flags["W"],
                SPLIT=config.split,
                BLOCK=block,
                USE_PDL=self.use_pdl,
                num_warps=4,
                **extra,
            )


class FusedVerifyStep:
    """Every launch of one width-W verification step of `model`.

    Reads W token ids from `ids` at the consecutive positions in `positions` (pos..pos+W-1;
    static device buffers, made here unless given) and writes the greedy token after each
    position into `out`, and their keys and values into the model's cache: exactly
    `FastDecoder.forward(ids, positions)`.
    """

    def __init__(
        self,
        model: FastDecoder,
        width: int,
        ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
        use_pdl: bool = False,
        cache_hints: bool = True,
        splits: dict[str, int] | None = None,
        key_blocks: dict[str, int] | None = None,
        finalize_launch: bool = True,
        merge_launch: bool = True,
        merge_dims: int | None = MERGE_DIMS,
        tensor_cores: bool = True,
        screen: HeadScreen | None = None,
    ) -> None:
        _check_supported(model, width)
        # The lm_head through this int8 screen (the decode step's, `screen_weights`), then
        # each column's candidate bf16 rows (`fk.head_verify_kernel`).
        if screen is not None and _scale(model.lm_head) is not None:
            raise FusedUnsupportedError(
                "a screen is for a bf16 lm_head, and this one is int8 already: pass screen=None"
            )
        self.screen = screen
        self.model, self.width, self.shape = model, width, model.shape
        # Residual finalizers as launches of their own, one program a column, instead of the
        # last mat-mat program behind a counter (the decode step's `finalize_launch`).
        self.finalize_launch = finalize_launch
        # Attention's splits merged by a launch of their own (the decode step's `merge_kernel`,
        # each program a query's head, or `merge_dims` of its dimensions) instead of the last
        # split behind a counter.
        self.merge_launch = merge_launch
        self.merge_dims = check_merge_dims(merge_dims)
        # Mat-mats through `tl.dot` (columns padded to 16), or float32 products per column as
        # the decode step's mat-vecs do (columns padded to a power of two; an experiment for
        # small W, where the padding wastes most of the tensor-core work).
        self.tensor_cores = tensor_cores
        self.use_pdl = use_pdl and model.device.type == "cuda"
        device = model.device
        self.ids = ids if ids is not None else self._new(width, dt=torch.long)
        self.positions = positions if positions is not None else torch.arange(width, device=device)
        self.out = out if out is not None else self._new(width, dt=torch.long)
        # The decode step's attention defaults (32/64 splits of 32-key blocks; 2 of 16 under
        # the interpreter), not yet timed for the verify step.
        self.splits = {
            kind: 2 if fk.INTERPRETED else (32 if kind == SLIDING else 64)
            for kind in self.shape.attention
        } | (splits or {})
        for kind, runs in self.splits.items():
            if runs < 1 or runs & (runs - 1):
                raise ValueError(f"attention splits must be a power of two, got {kind}={runs}")
        self.key_blocks = {kind: 16 if fk.INTERPRETED else 32 for kind in self.shape.attention} | (
            key_blocks or {}
        )
        self.launches: list[Callable[[], None]] = []
        self.matmats: list[_Matmat] = []
        self._allocate()
        self._build()
        self.set_cache_hints(cache_hints)

    def _new(self, *size: int, dt: torch.dtype | None = None) -> torch.Tensor:
        return torch.zeros(size, dtype=dt or self.model.dtype, device=self.model.device)

    def _allocate(self) -> None:
        shape, width = self.shape, self.width
        head_dims = [geometry.head_dim for geometry in shape.attention.values()]
        widest = shape.num_heads * max(head_dims)
        most_splits = max(self.splits.values())
        qkv_rows = max(_weight(block.attention.qkv).shape[0] for block in self._blocks)
        self.qkv_out = self._new(width * qkv_rows)
        self.q = self._new(width * widest)
        self.attn_out = self._new(width * widest)
        parts = width * shape.num_heads * most_splits
        self.m_part = self._new(parts, dt=torch.float32)
        self.l_part = self._new(parts, dt=torch.float32)
        self.acc_part = self._new(parts, max(head_dims), dt=torch.float32)
        kv_heads = max(geometry.num_kv_heads for geometry in shape.attention.values())
        self.counters = self._new(shape.num_layers, kv_heads * width, dt=torch.int32)
        hidden = shape.hidden_size
        self.a = self._new(width * hidden)
        self.h = self._new(width * shape.intermediate_size)
        self.mlp_out = self._new(width * hidden)
        self.projected = self._new(width * hidden)
        self.xin = self._new(width * hidden)
        self.ple = self._new(width * shape.num_layers * shape.ple_dim)
        # Partial sums of split mat-mats, one mat-mat at a time: each consumer has read them
        # before the next split mat-mat writes (it waits for the consumer's grid).
        widest_out = max(2 * shape.intermediate_size, hidden)
        self.partials = self._new(MAX_SPLIT * width * widest_out, dt=torch.float32)

    def set_cache_hints(self, on: bool) -> None:
        """L2 eviction hints on every mat-mat (as `FusedDecodeStep.set_cache_hints`)."""
        for launch in self.matmats:
            launch.cache_hints = on

    @property
    def _blocks(self) -> list[Block]:
        return cast(list[Block], list(self.model.blocks))

    def __call__(self) -> None:
        for launch in self.launches:
            launch()

    # -- building -------------------------------------------------------------------------

    def _matmat(
        self,
        weight: torch.Tensor,
        out: torch.Tensor,
        rows: int,
        x: torch.Tensor,
        *,
        embed_input: bool = False,
        final: _Final | None = None,
        epilogue: int = fvk.STORE,
        scale: torch.Tensor | None = None,
        **aux: Any,
    ) -> _Matmat:
        shape, width = self.shape, self.width
        columns = max(16, _pow2(width)) if self.tensor_cores else _pow2(width)
        any_tensor = weight
        counter = self._new(1, dt=torch.int32) if final is not None else any_tensor
        args: dict[str, Any] = {
            "x_ptr": x,
            "ids_ptr": self.ids,
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
            "HID": shape.hidden_size,
            "res_scale": float(self.model.embed_scale),
            "out_scale": float(aux.get("out_scale", 1.0)),
            "aux_scale": float(aux.get("aux_scale", 1.0)),
            "eps": float(shape.rms_norm_eps),
            "aux_offset": int(aux.get("aux_offset", 0)),
            "aux_stride": int(aux.get("aux_stride", 0)),
            "aux_row": shape.num_layers * shape.ple_dim,
        }
        flags = {
            "W": width,
            "WP": columns,
            "EMBED_INPUT": embed_input,
            "EPI": epilogue,
            "FINAL": final is not None,
            "F_FROM_TOKEN": False,
            "F_HAS_DELTA": False,
            "F_HAS_SCALAR": False,
            "F_PRE_NORM": False,
            "AUX_BLOCK": _pow2(rows) if epilogue == fvk.PLE_GATE else 1,
            "HC": min(_pow2(shape.hidden_size), max(16, FINAL_CHUNK_VALUES // columns)),
            "IEEE": self.model.dtype == torch.float32,
            "DOT": self.tensor_cores,
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
        if final is not None and self.finalize_launch:
            flags["FINAL"] = False
        # Columns may be split where a launch of ours adds the partials: the finalize launch
        # of a delta (o, down, the per-layer-embedding projection), and for gate+up a reduce
        # launch that the mat-mat's own entry makes after it (so the list of launches, and
        # what a CUDA graph captures, follows the tiles chosen after it was built).
        finalized = final is not None and final.g_post is not None and self.finalize_launch
        splittable = self.tensor_cores and (epilogue == fvk.GEGLU or finalized)
        launch = _Matmat(
            weight,
            out,
            rows,
            args,
            {k: int(v) for k, v in flags.items()},
            self.use_pdl,
            self.partials if splittable else None,
        )
        self.launches.append(launch)
        self.matmats.append(launch)
        if final is not None and self.finalize_launch:
            self.launches.append(self._finalizer(launch))
        return launch

    def _finalizer(self, launch: _Matmat) -> Callable[[], None]:
        """`launch`'s finalizer as a launch of W programs after it (`finalize_launch`)."""
        return finalizer_launch(
            launch.out,
            launch.args,
            launch.flags,
            self.ids,
            self.width,
            _pow2(self.shape.hidden_size),
            launch.cache_hints,
            self.use_pdl,
            launch.output,
        )

    def _next_norm(self, index: int) -> torch.Tensor:
        blocks = self._blocks
        return blocks[index + 1].input_norm if index + 1 < len(blocks) else self.model.final_norm

    def _build(self) -> None:
        model, shape, width = self.model, self.shape, self.width
        hidden, ple_dim, layers = shape.hidden_size, shape.ple_dim, shape.num_layers
        residual = self._new(width * hidden)
        self._matmat(
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
            epilogue=fvk.SCALE,
            out_scale=hidden**-0.5,
            scale=_scale(model.ple_model_projection),
        )
        for index, block in enumerate(self._blocks):
            residual = self._layer(index, block, residual)
        lm_head = _weight(model.lm_head)
        vocab, cap = lm_head.shape[0], shape.final_logit_softcapping or 0.0
        # Room for one partial per column and row block: any tile `tl.dot` accepts (16 rows
        # at least), any tile at all without tensor cores.
        blocks = -(-vocab // 16) if self.tensor_cores else vocab
        self.best = self._new(width * blocks, dt=torch.float32)
        self.index = self._new(width * blocks, dt=torch.int32)
        screen = self.screen
        if screen is None:
            self.head = self._matmat(
                lm_head,
                self.xin,  # unused: SOFTCAP_ARGMAX stores only block maxima
                vocab,
                self.xin,
                epilogue=fvk.SOFTCAP_ARGMAX,
                out_scale=cap,
                scale=_scale(model.lm_head),
                aux=self.best,
                aux2=self.index,
            )
        else:
            self.upper = self._new(width * vocab, dt=torch.float32)
            self.floor = torch.full((width,), float("-inf"), device=model.device)
            self.seen = self._new(width * screen_programs(vocab), dt=torch.int32)
            self.head = self._matmat(
                screen.codes,
                self.xin,  # unused: SCREEN stores only bounds
                vocab,
                self.xin,
                epilogue=fvk.SCREEN,
                out_scale=cap,
                scale=screen.scale,
                aux=self.upper,
                aux2=self.floor,
                aux3=screen.radius,
            )
            self.launches.append(self._head_verify)
        self.launches.append(self._finish)
        if model.hidden_out is not None:
            self.launches.append(self._keep_hidden)

    def _layer(self, index: int, block: Block, residual: torch.Tensor) -> torch.Tensor:
        """Launches of one layer over the W residual streams `residual` (normed into
        self.xin); the streams it leaves (normed for the next layer into self.xin)."""
        model, shape, width = self.model, self.shape, self.width
        hidden = shape.hidden_size
        attention = block.attention
        qkv = _weight(attention.qkv)
        self._matmat(qkv, self.qkv_out, qkv.shape[0], self.xin, scale=_scale(attention.qkv))
        self._attention(index, block, qkv.shape[0])
        o_proj = _weight(attention.o_proj)
        after_attention = self._new(width * hidden)
        self._matmat(
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
        self._matmat(
            _weight(block.gate_up),
            self.h,
            shape.intermediate_size,
            self.xin,
            epilogue=fvk.GEGLU,
            scale=_scale(block.gate_up),
        )
        down = _weight(block.down)
        after_mlp = self._new(width * hidden)
        self._matmat(
            down,
            self.mlp_out,
            down.shape[0],
            self.h,
            final=_Final(res=after_attention, res_out=after_mlp, g_post=block.post_mlp_norm),
            scale=_scale(block.down),
        )
        gated = self._new(width * shape.ple_dim)
        self._matmat(
            _weight(block.ple_gate),
            gated,
            shape.ple_dim,
            after_mlp,
            epilogue=fvk.PLE_GATE,
            aux=self.ple,
            aux2=model.ple_projection_norm,
            aux3=model.ple_embed,
            aux_offset=index * shape.ple_dim,
            aux_stride=model.ple_embed.shape[1],
            aux_scale=model.ple_scale,
            out_scale=2.0**-0.5,
            scale=_scale(block.ple_gate),
        )
        projection = _weight(block.ple_projection)
        after_layer = self._new(width * hidden)
        self._matmat(
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

    def _attention(self, index: int, block: Block, qkv_rows: int) -> None:
        attention = block.attention
        kind = attention.kind
        geometry = self.shape.attention[kind]
        head_dim, kv_heads, heads = geometry.head_dim, geometry.num_kv_heads, self.shape.num_heads
        cache = self.model.cache
        keys, values = cache.keys[attention.source], cache.values[attention.source]
        cos, sin = self.model.rope[kind]
        owns, width = attention.owns_cache, self.width
        extra = {"launch_pdl": True} if self.use_pdl else {}
        eps = float(self.shape.rms_norm_eps)
        k_norm = attention.k_norm if owns else attention.q_norm
        prep_grid = (heads + (kv_heads if owns else 0), width)

        def prep() -> None:
            fvk.verify_prep_kernel[prep_grid](
                self.qkv_out,
                self.q,
                attention.q_norm,
                k_norm,
                keys,
                values,
                cos,
                sin,
                self.positions,
                eps,
                keys.shape[1],
                qkv_rows,
                HEADS=heads,
                KV_HEADS=kv_heads,
                D=head_dim,
                K_EQ_V=attention.k_eq_v,
                USE_PDL=self.use_pdl,
                num_warps=4,
                **extra,
            )

        group = heads // kv_heads
        chunks, per_chunk = query_chunks(width, group, head_dim)
        rows = max(16, _pow2(per_chunk * group))
        splits, block_s = self.splits[kind], self.key_blocks[kind]
        merge_launch = self.merge_launch and splits > 1
        counters = self.counters[index]

        def attend() -> None:
            fvk.verify_attention_kernel[(kv_heads, splits, chunks)](
                self.q,
                keys,
                values,
                self.attn_out,
                self.m_part,
                self.l_part,
                self.acc_part,
                counters,
                self.positions,
                keys.shape[1],
                self.shape.sliding_window,
                W=width,
                QB=per_chunk,
                GROUP=group,
                RB=rows,
                D=head_dim,
                BS=block_s,
                SPLITS=splits,
                SLIDING=kind == SLIDING,
                HEADS=heads,
                IEEE=self.model.dtype == torch.float32,
                MERGE_LAUNCH=merge_launch,
                USE_PDL=self.use_pdl,
                num_warps=8 if rows * head_dim >= 8192 else 4,
                num_stages=1,
                **extra,
            )

        self.launches += [prep, attend]
        if merge_launch:
            # Partials of (query, head) sit where the decode step's are for head
            # query * heads + head, and so does its output row: the same kernel merges them.
            self.launches.append(merger_launch(self, width * heads, head_dim, splits))

    def _head_verify(self) -> None:
        head_verify_launch(self, self.width)

    def _finish(self) -> None:
        extra = {"launch_pdl": True} if self.use_pdl else {}
        screened = self.screen is not None
        blocks = screen_programs(self.head.rows) if screened else self.head.blocks
        fvk.verify_finish_kernel[(self.width,)](
            self.best,
            self.index,
            blocks,
            self.out,
            self.positions,
            self.model.cache.slot_positions,
            self.model.cache.ring,
            self.floor if screened else self.best,
            BLOCK=min(_pow2(blocks), FINISH_BLOCK),
            USE_PDL=self.use_pdl,
            RESET_FLOOR=screened,
            num_warps=16 if blocks > 4096 else 4,
            **extra,
        )

    def _keep_hidden(self) -> None:
        """What `FastDecoder.hidden` keeps for a drafter fed by the target's states: the
        final-normed states (the last layer's normed output, in xin) and their positions."""
        kept, kept_positions = self.model.hidden_out, self.model.hidden_positions
        assert kept is not None and kept_positions is not None
        width = self.width
        kept[:width].copy_(self.xin.view(width, -1))
        kept_positions[:width].copy_(self.positions)
        kept_positions[width:].fill_(-1)

    # -- tile configs -----------------------------------------------------------------------

    def tune_in_step(
        self,
        keys: int = 16,
        replays: int = 20,
        progress: Callable[[str], None] = lambda line: None,
    ) -> dict[str, Any]:
        """Choose mat-mat tiles by timing the whole captured step, one shape at a time
        (`fused.tune_shapes` over `candidate_configs`, every shape by default: the few-row
        per-layer-embedding mat-mats stream little but run on few programs; with tensor cores
        only). A replay
        rewrites the same keys, values, ring entries and tokens from the same inputs, so the
        trials change nothing but the tiles. Returns `tune_shapes`' report."""
        if not self.tensor_cores:
            raise ValueError("tune_in_step tunes the tensor-core mat-mats (tensor_cores=True)")
        return tune_shapes(
            self.matmats,
            lambda launch: candidate_configs(launch.rows, launch.k, launch.splittable),
            lambda: replay_seconds(capture_graph(self), replays) * 1e3,
            keys,
            progress,
        )

    def configs(self) -> dict[str, dict[str, int]]:
        """The tile config of every distinct mat-mat shape (JSON-ready)."""
        return {launch.key: asdict(launch.config) for launch in self.matmats}

    def use_configs(self, configs: dict[str, dict[str, int]]) -> int:
        """Apply saved configs to the shapes they name; how many launches changed. A config
        whose tile `tl.dot` cannot take (under 16 rows or columns, with tensor cores), or a
        one-wave config (`programs`, which only the decode step's mat-vec has), is refused."""
        changed = 0
        for launch in self.matmats:
            if launch.key in configs:
                config = MatvecConfig(**configs[launch.key])
                small = min(config.block_n, config.block_k) < 16 and self.tensor_cores
                if small or config.programs:
                    raise ValueError(
                        f"{launch.key}: mat-mat tiles need at least 16 rows and 16 columns "
                        f"(tl.dot) and no one-wave `programs`, got {config}"
                    )
                if not launch.accepts(config):
                    raise ValueError(
                        f"{launch.key}: this mat-mat cannot split its {launch.k} columns "
                        f"{config.split} ways in tiles of {config.block_k} (only gate+up and "
                        f"mat-mats with a finalize launch split, into whole tiles, at most "
                        f"{MAX_SPLIT} ways), got {config}"
                    )
                launch.config = config
                changed += 1
        return changed


def _check_supported(model: FastDecoder, width: int) -> None:
    """Refuse what the step cannot compute exactly as `FastDecoder.forward` does."""
    if not fk.HAVE_TRITON:
        raise FusedUnsupportedError("the fused verify step needs triton")
    if model.device.type != "cuda" and not fk.INTERPRETED:
        raise FusedUnsupportedError(
            "the fused verify step runs on CUDA (or on CPU under TRITON_INTERPRET=1)"
        )
    if not model.shape.ple_dim:
        raise FusedUnsupportedError(
            "the fused verify step needs a decoder with per-layer embeddings (Gemma-4 E2B/E4B)"
        )
    if not 1 <= width <= MAX_WIDTH:
        raise FusedUnsupportedError(
            f"the fused verify step takes 1 to {MAX_WIDTH} tokens, not {width}; verify at "
            f"most K = {MAX_WIDTH - 1} drafts a step"
        )
    cache = model.cache
    if width > model.max_step_tokens or width + cache.window > cache.ring:
        raise FusedUnsupportedError(
            f"a width-{width} step does not fit the sliding ring ({cache.ring} slots for a "
            f"window of {cache.window}); build the FastDecoder with max_step_tokens >= {width}"
        )
    if width > cache.max_len:
        raise FusedUnsupportedError(f"the cache holds {cache.max_len} positions, not {width}")


def query_chunks(width: int, group: int, head_dim: int) -> tuple[int, int]:
    """How attention divides the W queries: (chunks, queries a chunk), so that a program's
    rows (queries x the KV head's query heads) x head_dim stay near ATTENTION_ROW_VALUES."""
    wanted = min(width, -(-width * group * head_dim // ATTENTION_ROW_VALUES))
    per_chunk = -(-width // wanted)
    return -(-width // per_chunk), per_chunk
