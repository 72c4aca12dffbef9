"""The Gemma 4 MTP assistant (`gemma4_assistant`) as a speculative drafter for the fast target.

The assistant is a few decoder layers with no keys or values of their own: every layer attends
over the target's KV cache (the last cache-owning layer of its type), and its input is the
target's token embedding of the last token next to a hidden state. One proposal runs it K
times at one fixed position, the position of the last token of the context (not yet in the
target's cache):

- step 1 takes the target's embedding of that token and the target's final-normed hidden state
  at the position before it (the state whose logits chose that token);
- each step's greedy token is a draft; the next step takes that token's target embedding and
  the assistant's own output state, projected back to the target's width;
- attention sees the target's keys at positions before the fixed one: all of them on global
  layers, the last `sliding_window + 1` on sliding layers (as transformers' assistant masks).

docs/engine.md states the whole contract. The math is re-implemented over the target's static
cache (no host sync, fixed shapes), so on CUDA the K steps of one proposal are one graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from swarmlab.engine.fast.config import (
    GLOBAL,
    SLIDING,
    AttentionShape,
    DecoderShape,
    layer_type_shapes,
)
from swarmlab.engine.fast.model import (
    FastDecoder,
    attend,
    greedy,
    layer_weights,
    linear_from,
    rms_norm,
    rope_tables,
    rotate,
)
from swarmlab.engine.fast.runner import DEFAULT_SYNC_EVERY, CapturedStep, GreedyRunner
from swarmlab.engine.fast.spec_graph import GraphSpeculator, SpeculatorSetupError
from swarmlab.engine.speculative import DraftMismatchError

Rope = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class AssistantShape:
    """What the drafter depends on in a `Gemma4AssistantConfig`."""

    vocab_size: int
    hidden_size: int
    backbone_hidden_size: int
    num_heads: int
    layer_types: tuple[str, ...]
    attention: dict[str, AttentionShape]
    sliding_window: int
    rms_norm_eps: float
    # Centroid-masked head: only `centroid_top_k` clusters of the vocabulary are scored.
    num_centroids: int = 0
    centroid_top_k: int = 0


def assistant_shape(config: Any) -> AssistantShape:
    """Read transformers' `Gemma4AssistantConfig` (its `text_config` holds the decoder)."""
    text = config.get_text_config()
    ordered = bool(getattr(config, "use_ordered_embeddings", False))
    return AssistantShape(
        vocab_size=int(text.vocab_size),
        hidden_size=int(text.hidden_size),
        backbone_hidden_size=int(config.backbone_hidden_size),
        num_heads=int(text.num_attention_heads),
        layer_types=tuple(text.layer_types),
        attention=layer_type_shapes(text),
        sliding_window=int(text.sliding_window),
        rms_norm_eps=float(text.rms_norm_eps),
        num_centroids=int(config.num_centroids) if ordered else 0,
        centroid_top_k=int(config.centroid_intermediate_top_k) if ordered else 0,
    )


def target_kv_layers(shape: DecoderShape) -> dict[str, int]:
    """Per layer type, the target layer whose cache the assistant reads: the last one of that
    type that owns a cache (the layer transformers returns in `shared_kv_states`)."""
    first_shared = shape.num_layers - shape.num_kv_shared_layers
    return {kind: layer for layer, kind in enumerate(shape.layer_types[:first_shared])}


def check_assistant_fits(assistant: AssistantShape, target: DecoderShape) -> dict[str, int]:
    """The target layers to read per type, or `DraftMismatchError` saying what differs."""
    hint = "use the assistant released with this target model, or SWARMLAB_FAST_DRAFT=ngram"
    if assistant.vocab_size != target.vocab_size:
        raise DraftMismatchError(
            f"assistant vocabulary ({assistant.vocab_size}) differs from the target's "
            f"({target.vocab_size}); {hint}"
        )
    if assistant.backbone_hidden_size != target.hidden_size:
        raise DraftMismatchError(
            f"assistant backbone_hidden_size ({assistant.backbone_hidden_size}) differs from the "
            f"target's hidden size ({target.hidden_size}); {hint}"
        )
    sources = target_kv_layers(target)
    for kind, geometry in assistant.attention.items():
        _check_kind(kind, geometry, assistant.num_heads, target, sources, hint)
    if SLIDING in assistant.attention and assistant.sliding_window > target.sliding_window:
        raise DraftMismatchError(
            f"assistant sliding window ({assistant.sliding_window}) is wider than the target's "
            f"({target.sliding_window}), whose cache keeps no older keys; {hint}"
        )
    return {kind: sources[kind] for kind in assistant.attention}


def _check_kind(
    kind: str,
    geometry: AttentionShape,
    heads: int,
    target: DecoderShape,
    sources: dict[str, int],
    hint: str,
) -> None:
    if kind not in sources:
        raise DraftMismatchError(
            f"the assistant has {kind} layers but the target has no cache of that type; {hint}"
        )
    theirs = target.attention[kind]
    if geometry.head_dim != theirs.head_dim or heads % theirs.num_kv_heads:
        raise DraftMismatchError(
            f"assistant {kind} layers ({heads} heads of {geometry.head_dim}) cannot attend over "
            f"the target's ({theirs.num_kv_heads} KV heads of {theirs.head_dim}); {hint}"
        )


def check_keeps_hidden(target: FastDecoder) -> None:
    """Raise unless `target` keeps its hidden states, which the assistant drafts from."""
    if target.hidden_out is None:
        raise ValueError(
            "the target keeps no hidden states; call FastDecoder.keep_hidden() before "
            "building its GreedyRunner"
        )


class AssistantLayer(nn.Module):
    """One assistant decoder layer: query-only attention over a target cache, GeGLU MLP."""

    def __init__(self, shape: AssistantShape, kind: str, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.kind = kind
        self.head_dim = shape.attention[kind].head_dim
        self.eps = shape.rms_norm_eps
        self.q_proj = linear_from(weights["q_proj"])
        self.q_norm = weights["q_norm"]
        self.o_proj = linear_from(weights["o_proj"])
        self.gate_up = linear_from(torch.cat([weights["gate_proj"], weights["up_proj"]]))
        self.down = linear_from(weights["down_proj"])
        self.input_norm = weights["input_norm"]
        self.post_attention_norm = weights["post_attention_norm"]
        self.pre_mlp_norm = weights["pre_mlp_norm"]
        self.post_mlp_norm = weights["post_mlp_norm"]
        self.layer_scalar = weights["layer_scalar"]

    def forward(
        self, x: torch.Tensor, rope: Rope, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor
    ) -> torch.Tensor:
        h = rms_norm(x, self.input_norm, self.eps)
        q = self.q_proj(h).view(h.shape[0], -1, self.head_dim)
        q = rotate(rms_norm(q, self.q_norm, self.eps), *rope)
        h = self.o_proj(attend(q, kv[0], kv[1], mask))
        x = x + rms_norm(h, self.post_attention_norm, self.eps)
        gate, up = self.gate_up(rms_norm(x, self.pre_mlp_norm, self.eps)).chunk(2, dim=-1)
        h = self.down(F.gelu(gate, approximate="tanh") * up)
        x = x + rms_norm(h, self.post_mlp_norm, self.eps)
        return x * self.layer_scalar


class MtpAssistant:
    """The assistant's math over a `FastDecoder`'s cache and embedding; `step` is one draft."""

    def __init__(self, shape: AssistantShape, weights: dict[str, Any], target: FastDecoder) -> None:
        self.shape = shape
        self.target = target
        sources = check_assistant_fits(shape, target.shape)
        cache = target.cache
        self.kv = {
            kind: (cache.keys[layer], cache.values[layer]) for kind, layer in sources.items()
        }
        self.layers = [
            AssistantLayer(shape, kind, layer)
            for kind, layer in zip(shape.layer_types, weights["layers"], strict=True)
        ]
        self.pre_projection = linear_from(weights["pre_projection"])
        self.post_projection = linear_from(weights["post_projection"])
        self.final_norm = weights["final_norm"]
        self.lm_head = weights["lm_head"]
        self.centroids: nn.Linear | None = None
        if shape.num_centroids:
            self.centroids = linear_from(weights["centroids"])
            # Row c lists the vocabulary ids of cluster c.
            self.clusters = weights["token_ordering"].long().view(shape.num_centroids, -1)
        self.rope = {
            kind: rope_tables(geometry, cache.max_len, target.dtype, target.device)
            for kind, geometry in shape.attention.items()
        }

    @classmethod
    def from_transformers(cls, model: Any, target: FastDecoder) -> MtpAssistant:
        """Build from a loaded `Gemma4AssistantForCausalLM`, sharing its weight tensors."""
        shape = assistant_shape(model.config)
        return cls(shape, extract_assistant_weights(model, shape), target)

    def view(self, position: torch.Tensor) -> tuple[dict[str, Rope], dict[str, torch.Tensor]]:
        """Rotary tables at `position` ([1]) and, per layer type, which target cache slots a
        query there sees: positions before it (on sliding layers the last window + 1)."""
        rope = {kind: (cos[position], sin[position]) for kind, (cos, sin) in self.rope.items()}
        cache = self.target.cache
        masks = {GLOBAL: (cache.global_positions < position)[None, :]}
        held = cache.slot_positions
        window = (
            (held >= 0) & (held < position) & (held >= position - 1 - self.shape.sliding_window)
        )
        masks[SLIDING] = window[None, :]
        return rope, {kind: masks[kind] for kind in self.kv}

    def draft(self, token: torch.Tensor, position: torch.Tensor, k: int) -> torch.Tensor:
        """`k` greedy drafts after `token` ([1]) at `position` ([1]) ([k], on device, no host
        sync), from the target's kept hidden state at `position - 1`."""
        target = self.target
        check_keeps_hidden(target)
        assert target.hidden_out is not None and target.hidden_positions is not None
        kept = (target.hidden_positions == position - 1).float()
        state = target.hidden_out.index_select(0, torch.argmax(kept).view(1))
        rope, masks = self.view(position)
        tokens = [token]
        for _ in range(k):
            token, state = self.step(tokens[-1], state, rope, masks)
            tokens.append(token)
        return torch.cat(tokens[1:])

    def step(
        self,
        token: torch.Tensor,
        state: torch.Tensor,
        rope: dict[str, Rope],
        masks: dict[str, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One draft: (the greedy token [1], the state for the next step [1, target width])."""
        target = self.target
        embedded = F.embedding(token, target.embed) * target.embed_scale
        x = self.pre_projection(torch.cat((embedded, state), dim=-1))
        for layer in self.layers:
            x = layer(x, rope[layer.kind], self.kv[layer.kind], masks[layer.kind])
        x = rms_norm(x, self.final_norm, self.shape.rms_norm_eps)
        return self._head(x), self.post_projection(x)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        if self.centroids is None:
            return greedy(F.linear(x, self.lm_head))
        top = torch.topk(self.centroids(x), self.shape.centroid_top_k, dim=-1).indices
        candidates = self.clusters[top[0]].reshape(1, -1)
        scores = F.linear(x, self.lm_head[candidates[0]])
        # Unscored ids lose; scattering back to vocabulary order breaks ties by the lowest
        # id, as the full-vocabulary argmax transformers takes does.
        logits = x.new_full((1, self.shape.vocab_size), float("-inf"))
        return greedy(logits.scatter_(1, candidates, scores))


def extract_assistant_weights(model: Any, shape: AssistantShape) -> dict[str, Any]:
    """Pick the tensors the drafter needs out of a transformers `Gemma4AssistantForCausalLM`."""
    state = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    layers = layer_weights(state, "model.layers.", len(shape.layer_types))
    weights: dict[str, Any] = {
        "layers": layers,
        "final_norm": state["model.norm.weight"],
        "lm_head": model.lm_head.weight.detach(),
        "pre_projection": state["pre_projection.weight"],
        "post_projection": state["post_projection.weight"],
    }
    if shape.num_centroids:
        weights["centroids"] = state["masked_embedding.centroids.weight"]
        weights["token_ordering"] = state["masked_embedding.token_ordering"]
    return weights


class AssistantDrafter:
    """Drafts with an `MtpAssistant` from the target's last step; a `Drafter`.

    The target must keep its hidden states (`FastDecoder.keep_hidden()`, before its runner is
    built). Each proposal picks the kept state at the position before the context's last token,
    which the target's last call (a prefill, or the verification that accepted that token)
    computed, then runs `max_k` assistant steps, captured as one CUDA graph on CUDA
    (`compile_step`: torch.compile'd first, which fuses their many small kernels).
    """

    def __init__(
        self,
        assistant: MtpAssistant,
        max_k: int,
        use_graph: bool = True,
        compile_step: bool = False,
    ) -> None:
        target = assistant.target
        check_keeps_hidden(target)
        self.assistant = assistant
        self.max_k = max_k
        device = target.device
        self.token = torch.zeros(1, dtype=torch.long, device=device)
        # Position 1 sees position 0: the capture's warm-up runs stay finite.
        self.position = torch.ones(1, dtype=torch.long, device=device)
        self.drafts = torch.zeros(max_k, dtype=torch.long, device=device)
        self._proposal: Callable[[], torch.Tensor] = self._propose_all
        if compile_step:
            self._proposal = torch.compile(self._propose_all, dynamic=False)
        with torch.inference_mode():
            self._draft = CapturedStep(self._body, device, use_graph)

    def _body(self) -> None:
        self.drafts.copy_(self._proposal())

    def _propose_all(self) -> torch.Tensor:
        return self.assistant.draft(self.token, self.position, self.max_k)

    @torch.inference_mode()
    def propose(self, context: list[int], k: int) -> list[int]:
        if k > self.max_k:
            raise ValueError(f"this drafter was built for at most {self.max_k} drafts, not {k}")
        self.token.fill_(context[-1])
        self.position.fill_(len(context) - 1)
        self._draft()
        return cast(list[int], self.drafts[:k].tolist())


class AssistantSpeculator(GraphSpeculator):
    """The one-graph speculative step (`spec_graph.py`) with the MTP assistant drafting: its K
    steps, the target's width-(K+1) verification and the acceptance are one captured body,
    replayed with no host read.

    The assistant has no cache and no prefill: it drafts from the pending token at its position
    and the target's kept hidden state one position earlier, which the previous step's
    verification (or the prefill) left in the target's buffers. The base class's draft runner
    is the target itself, so its draft-side checks and resets (vocabulary, ring size, context
    limit) apply to the cache the assistant reads.
    """

    def __init__(
        self,
        target: GreedyRunner,
        assistant: MtpAssistant,
        k: int,
        use_graph: bool = True,
        sync_every: int = DEFAULT_SYNC_EVERY,
        compile_step: bool = False,
    ) -> None:
        if assistant.target is not target.model:
            raise SpeculatorSetupError(
                "the assistant reads another model's cache; build it over this runner's "
                "model: MtpAssistant.from_transformers(assistant_model, runner.model)"
            )
        check_keeps_hidden(target.model)
        self.assistant = assistant
        self._assistant_draft: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] = (
            assistant.draft
        )
        if compile_step:
            self._assistant_draft = torch.compile(assistant.draft, dynamic=False)
        super().__init__(target, target, k, use_graph, sync_every)

    def _prefill_draft(self, prompt: list[int]) -> None:
        """Nothing to do: the assistant reads the target's cache."""

    def _draft_tokens(self) -> torch.Tensor:
        return self._assistant_draft(self.pending, self.position, self.k)


def load_mtp_assistant(path: Path, target: FastDecoder, device: str, dtype: str) -> MtpAssistant:
    """An `MtpAssistant` over `target` from a `gemma4_assistant` checkpoint directory."""
    from swarmlab.engine.loading import load_assistant

    return MtpAssistant.from_transformers(load_assistant(path, device, dtype), target)


def load_assistant_drafter(
    path: Path,
    target: FastDecoder,
    device: str,
    dtype: str,
    max_k: int,
    use_graph: bool,
    compile_step: bool = False,
) -> AssistantDrafter:
    """An `AssistantDrafter` from a `gemma4_assistant` checkpoint directory."""
    assistant = load_mtp_assistant(path, target, device, dtype)
    return AssistantDrafter(assistant, max_k, use_graph, compile_step)
