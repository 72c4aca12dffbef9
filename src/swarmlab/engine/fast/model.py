"""A re-implemented Gemma-4 text decoder for single-stream decoding.

The math follows transformers' `Gemma4ForCausalLM` operation for operation (same dtypes, same
order of scaling and casting), so greedy tokens match it; what differs is the plumbing: q/k/v and
gate/up projections are fused into one matrix each, the KV cache is static and addressed by
position (`kv_cache.py`), and `forward` has fixed shapes for a given token count, with no host
synchronisation, so one decode step can be captured in a CUDA graph. Batch size is always 1.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from swarmlab.engine.fast.config import GLOBAL, AttentionShape, DecoderShape, shape_from_config
from swarmlab.engine.fast.kv_cache import KVCache, Step


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Gemma-4 RMSNorm: float32 statistics, plain (not 1 + w) scale, cast back."""
    h = x.float()
    h = h * torch.pow(h.pow(2).mean(-1, keepdim=True) + eps, -0.5)
    if weight is not None:
        h = h * weight.float()
    return h.type_as(x)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding on [T, heads, dim] with per-token cos/sin of shape [T, dim]."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


def attend(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Grouped-query attention of q [T, heads, dim] over one layer's cache [kv_heads, S, dim].

    The query heads that share a KV head are stacked into one batch row, so keys and values are
    read once per KV head instead of being repeated per query head; scores are unscaled (the
    q/k norms stand in for 1/sqrt(d)) and softmaxed in float32, as transformers does.
    """
    tokens, heads, dim = q.shape
    kv_heads, slots, _ = keys.shape
    group = heads // kv_heads
    rows = (
        q.view(tokens, kv_heads, group, dim)
        .permute(1, 0, 2, 3)
        .reshape(kv_heads, tokens * group, dim)
    )
    scores = torch.bmm(rows, keys.transpose(1, 2))
    visible = mask[:, None, :].expand(tokens, group, slots).reshape(1, tokens * group, slots)
    scores = scores.masked_fill(~visible, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    out = torch.bmm(probs, values).view(kv_heads, tokens, group, dim)
    return out.permute(1, 0, 2, 3).reshape(tokens, heads * dim)


def inverse_frequencies(geometry: AttentionShape) -> torch.Tensor:
    """Rotary inverse frequencies; `proportional` rotates only the first fraction of dims."""
    dim = geometry.head_dim
    if geometry.rope_type == "default":
        return 1.0 / (geometry.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    angles = int(geometry.partial_rotary_factor * dim // 2)
    exponents = torch.arange(0, 2 * angles, 2, dtype=torch.int64).float() / dim
    rotated = 1.0 / (geometry.rope_theta**exponents)
    frequencies = torch.cat((rotated, torch.zeros(dim // 2 - angles)))
    return frequencies / geometry.rope_factor


def rope_tables(
    geometry: AttentionShape, max_len: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin for every position, computed as transformers does (float32, then cast)."""
    positions = torch.arange(max_len, device=device).float()
    freqs = positions[:, None] * inverse_frequencies(geometry).to(device)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def linear_from(weight: torch.Tensor) -> nn.Linear:
    """An nn.Linear (no bias) around an existing weight, without copying it."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    layer.weight = nn.Parameter(weight, requires_grad=False)
    return layer


class Attention(nn.Module):
    """Self-attention of one layer; shared-KV layers carry only q and o projections."""

    def __init__(self, shape: DecoderShape, layer: int, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.layer = layer
        self.source = shape.kv_source[layer]
        self.kind = shape.layer_types[layer]
        geometry = shape.attention[self.kind]
        self.head_dim = geometry.head_dim
        self.q_size = shape.num_heads * geometry.head_dim
        self.kv_size = geometry.num_kv_heads * geometry.head_dim
        self.k_eq_v = geometry.k_eq_v
        self.eps = shape.rms_norm_eps
        self.owns_cache = shape.owns_cache(layer)
        parts = [weights["q_proj"]]
        if self.owns_cache:
            parts.append(weights["k_proj"])
            if not self.k_eq_v:
                parts.append(weights["v_proj"])
            self.k_norm = weights["k_norm"]
        self.qkv = linear_from(torch.cat(parts) if len(parts) > 1 else parts[0])
        self.o_proj = linear_from(weights["o_proj"])
        self.q_norm = weights["q_norm"]

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: KVCache,
        step: Step,
    ) -> torch.Tensor:
        tokens = x.shape[0]
        cos, sin = rope
        qkv = self.qkv(x)
        q = qkv[:, : self.q_size].view(tokens, -1, self.head_dim)
        q = rotate(rms_norm(q, self.q_norm, self.eps), cos, sin)
        if self.owns_cache:
            self._store(qkv, tokens, rope, cache, step)
        keys, values = cache.visible(self.source, self.kind, step)
        out = attend(q, keys, values, step.masks[self.kind])
        return self.o_proj(out)

    def _store(
        self,
        qkv: torch.Tensor,
        tokens: int,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: KVCache,
        step: Step,
    ) -> None:
        raw_k = qkv[:, self.q_size : self.q_size + self.kv_size].view(tokens, -1, self.head_dim)
        raw_v = raw_k if self.k_eq_v else qkv[:, self.q_size + self.kv_size :]
        k = rotate(rms_norm(raw_k, self.k_norm, self.eps), *rope)
        v = rms_norm(raw_v.reshape(tokens, -1, self.head_dim), None, self.eps)
        cache.store(self.layer, self.kind, step, k.transpose(0, 1), v.transpose(0, 1))


class Block(nn.Module):
    """One decoder layer: attention, GeGLU MLP, then the per-layer-embedding residual."""

    def __init__(self, shape: DecoderShape, layer: int, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.eps = shape.rms_norm_eps
        self.kind = shape.layer_types[layer]
        self.attention = Attention(shape, layer, weights)
        self.gate_up = linear_from(torch.cat([weights["gate_proj"], weights["up_proj"]]))
        self.down = linear_from(weights["down_proj"])
        self.input_norm = weights["input_norm"]
        self.post_attention_norm = weights["post_attention_norm"]
        self.pre_mlp_norm = weights["pre_mlp_norm"]
        self.post_mlp_norm = weights["post_mlp_norm"]
        self.layer_scalar = weights["layer_scalar"]
        self.has_ple = shape.ple_dim > 0
        if self.has_ple:
            self.ple_gate = linear_from(weights["ple_gate"])
            self.ple_projection = linear_from(weights["ple_projection"])
            self.ple_norm = weights["ple_norm"]

    def forward(
        self,
        x: torch.Tensor,
        ple: torch.Tensor | None,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: KVCache,
        step: Step,
    ) -> torch.Tensor:
        h = self.attention(rms_norm(x, self.input_norm, self.eps), rope, cache, step)
        x = x + rms_norm(h, self.post_attention_norm, self.eps)
        gate, up = self.gate_up(rms_norm(x, self.pre_mlp_norm, self.eps)).chunk(2, dim=-1)
        h = self.down(F.gelu(gate, approximate="tanh") * up)
        x = x + rms_norm(h, self.post_mlp_norm, self.eps)
        if ple is not None:
            h = F.gelu(self.ple_gate(x), approximate="tanh") * ple
            x = x + rms_norm(self.ple_projection(h), self.ple_norm, self.eps)
        return x * self.layer_scalar


class FastDecoder(nn.Module):
    """The whole decoder plus its KV cache; `forward` is one fixed-shape step."""

    def __init__(
        self,
        shape: DecoderShape,
        weights: dict[str, Any],
        max_len: int,
        max_step_tokens: int,
    ) -> None:
        super().__init__()
        self.shape = shape
        embed: torch.Tensor = weights["embed"]
        self.dtype, self.device = embed.dtype, embed.device
        self.embed = embed
        # transformers rounds the embedding scales to the weight dtype before multiplying.
        self.embed_scale = torch.tensor(shape.hidden_size**0.5).to(self.dtype).item()
        self.ple_scale = torch.tensor(shape.ple_dim**0.5).to(self.dtype).item()
        self.blocks = nn.ModuleList(
            Block(shape, i, layer) for i, layer in enumerate(weights["layers"])
        )
        self.final_norm = weights["final_norm"]
        self.lm_head = linear_from(weights["lm_head"])
        if shape.ple_dim:
            self.ple_embed = weights["ple_embed"]
            self.ple_model_projection = linear_from(weights["ple_model_projection"])
            self.ple_projection_norm = weights["ple_projection_norm"]
        self.rope = {
            kind: rope_tables(geometry, max_len, self.dtype, self.device)
            for kind, geometry in shape.attention.items()
        }
        self.max_step_tokens = max_step_tokens
        self.cache = KVCache(shape, max_len, max_step_tokens, self.dtype, self.device)
        # Off unless `keep_hidden()` is called (the MTP assistant drafter reads them).
        self.hidden_out: torch.Tensor | None = None
        self.hidden_positions: torch.Tensor | None = None

    @classmethod
    def from_transformers(
        cls, model: Any, max_len: int = 4096, max_step_tokens: int = 512
    ) -> FastDecoder:
        """Build from a loaded `Gemma4ForCausalLM`, sharing its unfused weight tensors."""
        shape = shape_from_config(model.config)
        return cls(shape, extract_weights(model, shape), max_len, max_step_tokens)

    def per_layer_inputs(self, tokens: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Gemma-4's per-layer embeddings: a token lookup mixed with a projection of `x`."""
        layers, dim = self.shape.num_layers, self.shape.ple_dim
        looked_up = F.embedding(tokens, self.ple_embed) * self.ple_scale
        projected = self.ple_model_projection(x) * self.shape.hidden_size**-0.5
        projected = rms_norm(
            projected.view(-1, layers, dim), self.ple_projection_norm, self.shape.rms_norm_eps
        )
        return (projected + looked_up.view(-1, layers, dim)) * 2.0**-0.5

    def hidden(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        last_only: bool = False,
        key_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the decoder over `tokens` at `positions`, filling the cache; final-normed states
        of every position, or of the last one only (`last_only`, for prefill). `key_valid`
        marks a padded prefill's real tokens (`KVCache.begin_step`)."""
        x = F.embedding(tokens, self.embed) * self.embed_scale
        ple = self.per_layer_inputs(tokens, x) if self.shape.ple_dim else None
        step = self.cache.begin_step(positions, key_valid)
        rope = {kind: (cos[positions], sin[positions]) for kind, (cos, sin) in self.rope.items()}
        first_shared = self.shape.num_layers - self.shape.num_kv_shared_layers
        for i, block in enumerate(cast(list[Block], self.blocks)):
            if last_only and i == first_shared:
                # Shared-KV layers write no cache: only the last position matters from here on.
                x, ple = x[-1:], None if ple is None else ple[-1:]
                step = step.last_query()
                rope = {kind: (cos[-1:], sin[-1:]) for kind, (cos, sin) in rope.items()}
            x = block(x, None if ple is None else ple[:, i], rope[block.kind], self.cache, step)
        self.cache.finish_step(step)
        out = rms_norm(x, self.final_norm, self.shape.rms_norm_eps)
        if self.hidden_out is not None:
            self._keep(out, positions)
        return out

    def keep_hidden(self) -> None:
        """From now on, every step also leaves its final-normed states, and the position of
        each, in static buffers (`hidden_out`, `hidden_positions`; rows past the step's are
        marked -1), so a drafter fed by the target's hidden state can read them without a
        host sync. Call it before a runner compiles or captures the step."""
        rows = self.max_step_tokens
        self.hidden_out = torch.zeros(
            rows, self.shape.hidden_size, dtype=self.dtype, device=self.device
        )
        self.hidden_positions = torch.full((rows,), -1, dtype=torch.long, device=self.device)

    def _keep(self, out: torch.Tensor, positions: torch.Tensor) -> None:
        kept, kept_positions = self.hidden_out, self.hidden_positions
        assert kept is not None and kept_positions is not None
        rows = out.shape[0]
        if rows > kept.shape[0]:
            # Only teacher-forced scoring runs steps this wide; no drafter follows it.
            kept_positions.fill_(-1)
            return
        kept[:rows].copy_(out)
        kept_positions[:rows].copy_(positions[-rows:])
        kept_positions[rows:].fill_(-1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits with Gemma's final tanh softcap, in the model dtype."""
        logits = self.lm_head(hidden)
        cap = self.shape.final_logit_softcapping
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Greedy next token after each input position ([T] long), on device, no host sync."""
        return greedy(self.logits(self.hidden(tokens, positions)))


def greedy(logits: torch.Tensor, blocks: int = 256) -> torch.Tensor:
    """argmax over the vocabulary ([T, V] -> [T]), first index on ties like torch.argmax.

    Done in two stages (per block of the vocabulary, then across blocks) because a single
    262k-wide reduction compiles to one long-running program: 80 us of a 4 ms step on an H200.
    """
    tokens, vocab = logits.shape
    if vocab % blocks:
        return torch.argmax(logits, dim=-1)
    values, offsets = logits.view(tokens, blocks, vocab // blocks).max(dim=-1)
    block = torch.argmax(values, dim=-1, keepdim=True)
    return (block * (vocab // blocks) + offsets.gather(1, block))[:, 0]


def _text_model(model: Any) -> nn.Module:
    inner = model.model
    return getattr(inner, "language_model", inner)


LAYER_NAMES = {
    "q_proj": "self_attn.q_proj.weight",
    "k_proj": "self_attn.k_proj.weight",
    "v_proj": "self_attn.v_proj.weight",
    "o_proj": "self_attn.o_proj.weight",
    "q_norm": "self_attn.q_norm.weight",
    "k_norm": "self_attn.k_norm.weight",
    "gate_proj": "mlp.gate_proj.weight",
    "up_proj": "mlp.up_proj.weight",
    "down_proj": "mlp.down_proj.weight",
    "input_norm": "input_layernorm.weight",
    "post_attention_norm": "post_attention_layernorm.weight",
    "pre_mlp_norm": "pre_feedforward_layernorm.weight",
    "post_mlp_norm": "post_feedforward_layernorm.weight",
    "layer_scalar": "layer_scalar",
    "ple_gate": "per_layer_input_gate.weight",
    "ple_projection": "per_layer_projection.weight",
    "ple_norm": "post_per_layer_input_norm.weight",
}


def layer_weights(state: dict[str, torch.Tensor], prefix: str, count: int) -> list[dict[str, Any]]:
    """Each layer's tensors under `prefix{i}.`, by `LAYER_NAMES` key (absent ones left out)."""
    return [
        {
            key: state[f"{prefix}{i}.{name}"]
            for key, name in LAYER_NAMES.items()
            if f"{prefix}{i}.{name}" in state
        }
        for i in range(count)
    ]


def extract_weights(model: Any, shape: DecoderShape) -> dict[str, Any]:
    """Pick the tensors the fast decoder needs out of a transformers Gemma-4 model."""
    text = _text_model(model)
    state = {name: tensor.detach() for name, tensor in text.state_dict().items()}
    layers = layer_weights(state, "layers.", shape.num_layers)
    weights: dict[str, Any] = {
        "embed": state["embed_tokens.weight"],
        "final_norm": state["norm.weight"],
        "lm_head": model.lm_head.weight.detach(),
        "layers": layers,
    }
    if shape.ple_dim:
        weights["ple_embed"] = state["embed_tokens_per_layer.weight"]
        weights["ple_model_projection"] = state["per_layer_model_projection.weight"]
        weights["ple_projection_norm"] = state["per_layer_projection_norm.weight"]
    return weights


__all__ = ["GLOBAL", "FastDecoder"]
