"""Static, pre-allocated KV cache addressed by token position.

Every buffer is allocated once, so a captured CUDA graph can write into it at positions held
in device tensors. Global layers keep one slot per position up to `max_len`. Sliding layers keep
a ring of `window + max_step_tokens` slots: writing a step of T tokens overwrites only positions
that no query of this step or a later one can see, which is also what makes a rejected
speculative suffix harmless (its slots carry a future position and stay masked until rewritten).
Layers that share KV own no buffer: they read the buffers of their source layer.
"""

from __future__ import annotations

import torch

from swarmlab.engine.fast.config import GLOBAL, SLIDING, DecoderShape


class ContextTooLongError(ValueError):
    """A request needs more positions than the cache was built for."""


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
        self.ring = min(max_len, shape.sliding_window + max_step_tokens)
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

    def begin_step(self, positions: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Record this step's positions; return per layer type (write slots, attention mask)."""
        ring_slots = positions % self.ring
        self.slot_positions.index_copy_(0, ring_slots, positions)
        query = positions[:, None]
        visible = self.slot_positions[None, :]
        sliding_mask = (visible >= 0) & (visible <= query) & (visible > query - self.window)
        global_mask = self.global_positions[None, :] <= query
        return {SLIDING: (ring_slots, sliding_mask), GLOBAL: (positions, global_mask)}

    def write(
        self, layer: int, slots: torch.Tensor, key: torch.Tensor, value: torch.Tensor
    ) -> None:
        """Store one layer's keys and values ([kv_heads, T, head_dim]) at `slots`."""
        self.keys[layer].index_copy_(1, slots, key)
        self.values[layer].index_copy_(1, slots, value)
