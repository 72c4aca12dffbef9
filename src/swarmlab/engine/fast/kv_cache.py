"""Static, pre-allocated KV cache addressed by token position.

Every buffer is allocated once, so a captured CUDA graph can write into it at positions held
in device tensors. Global layers keep one slot per position up to `max_len`. Sliding layers keep
a ring of `window + max_step_tokens` slots with the position each slot holds: a step of at most
`max_step_tokens` tokens (a decode or verification step) writes its keys straight into the ring,
overwriting only positions no query of this step or a later one can see, which is also what
makes a rejected speculative suffix harmless (its slots carry a future position and stay masked
until rewritten). A wider step (a prefill chunk) attends over the ring plus its own keys and
writes the ring once every layer has run, so the ring, which decode reads every step, stays
small. Layers that share KV own no buffer: they read their source layer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from swarmlab.engine.fast.config import GLOBAL, SLIDING, DecoderShape


class ContextTooLongError(ValueError):
    """A request needs more positions than the cache was built for."""


@dataclass
class Step:
    """One forward step's view of the cache: where to write and what each query may see."""

    positions: torch.Tensor
    slots: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    wide: bool
    pending: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def last_query(self) -> Step:
        """The same step for its last query only (what KV-sharing layers need in prefill)."""
        masks = {kind: mask[-1:] for kind, mask in self.masks.items()}
        return Step(self.positions, self.slots, masks, self.wide, self.pending)


class KVCache:
    """Keys and values of every cache-owning layer, plus the slot bookkeeping per layer type."""

    def __init__(
        self,
        shape: DecoderShape,
        max_len: int,
        max_step_tokens: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.max_len = max_len
        self.window = shape.sliding_window
        # A multiple of 8 slots keeps attention's rows 16-byte aligned (fast matmul kernels).
        self.ring = min(max_len, -(-(shape.sliding_window + max_step_tokens) // 8) * 8)
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        for layer, kind in enumerate(shape.layer_types):
            if not shape.owns_cache(layer):
                continue
            geometry = shape.attention[kind]
            slots = self.ring if kind == SLIDING else max_len
            size = (geometry.num_kv_heads, slots, geometry.head_dim)
            # Zeros, not empty: a masked slot still enters the P@V product, and NaN*0 is NaN.
            self.keys[layer] = torch.zeros(size, dtype=dtype, device=device)
            self.values[layer] = torch.zeros(size, dtype=dtype, device=device)
        self.slot_positions = torch.full((self.ring,), -1, dtype=torch.long, device=device)
        self.global_positions = torch.arange(max_len, device=device)

    def reset(self) -> None:
        """Forget every position (a new request starts at position 0)."""
        self.slot_positions.fill_(-1)

    def check_fits(self, end_position: int) -> None:
        """Raise before a request would run past the cache's last position."""
        if end_position > self.max_len:
            raise ContextTooLongError(
                f"prompt plus new tokens need {end_position} positions but the cache holds "
                f"{self.max_len}; send a shorter request or start the engine with a larger "
                "--max-context"
            )

    def begin_step(self, positions: torch.Tensor, key_valid: torch.Tensor | None = None) -> Step:
        """Record this step's positions (narrow steps) and build every layer type's mask.

        `key_valid` ([T] bool) marks padding: a padded prefill repeats its first token at its
        first position, which rewrites that token's own cache entries with the same values;
        in a wide step a padding key must also not be attended to twice."""
        query = positions[:, None]
        global_mask = self.global_positions[None, :] <= query
        ring_slots = positions % self.ring
        wide = positions.shape[0] + self.window > self.ring
        if wide:
            # Ring entries at or past this step's first position are stale (an earlier, longer
            # request, or a rejected draft): this step's own keys stand for those positions.
            ring = self.slot_positions[None, :]
            ring_visible = (ring >= 0) & (ring < positions[:1]) & (ring > query - self.window)
            own_visible = (positions[None, :] <= query) & (positions[None, :] > query - self.window)
            if key_valid is not None:
                own_visible = own_visible & key_valid[None, :]
            sliding_mask = torch.cat((ring_visible, own_visible), dim=1)
        else:
            self.slot_positions.index_copy_(0, ring_slots, positions)
            visible = self.slot_positions[None, :]
            sliding_mask = (visible >= 0) & (visible <= query) & (visible > query - self.window)
        slots = {SLIDING: ring_slots, GLOBAL: positions}
        return Step(positions, slots, {SLIDING: sliding_mask, GLOBAL: global_mask}, wide)

    def store(
        self, layer: int, kind: str, step: Step, key: torch.Tensor, value: torch.Tensor
    ) -> None:
        """Keep one layer's keys and values ([kv_heads, T, head_dim]) for this step."""
        if kind == SLIDING and step.wide:
            step.pending[layer] = (key, value)
            return
        self.keys[layer].index_copy_(1, step.slots[kind], key)
        self.values[layer].index_copy_(1, step.slots[kind], value)

    def visible(self, layer: int, kind: str, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values a query of `kind` attends over, in the column order of its mask."""
        keys, values = self.keys[layer], self.values[layer]
        if kind == SLIDING and step.wide:
            key, value = step.pending[layer]
            return torch.cat((keys, key), dim=1), torch.cat((values, value), dim=1)
        return keys, values

    def finish_step(self, step: Step) -> None:
        """Write a wide step's last `ring` positions of every sliding layer into its ring."""
        if not step.wide:
            return
        keep = min(step.positions.shape[0], self.ring)
        positions = step.positions[-keep:]
        slots = positions % self.ring
        for layer, (key, value) in step.pending.items():
            self.keys[layer].index_copy_(1, slots, key[:, -keep:])
            self.values[layer].index_copy_(1, slots, value[:, -keep:])
        self.slot_positions.index_copy_(0, slots, positions)
