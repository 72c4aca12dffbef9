"""The shape of a Gemma-4 text decoder, as the fast path needs it.

Read once from a transformers `Gemma4TextConfig` (either the per-layer-config layout of
transformers >= 5.2x or the flat `global_head_dim` fields of earlier 5.x releases), or taken
from a named preset for benchmarking without a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SLIDING = "sliding_attention"
GLOBAL = "full_attention"


class UnsupportedCheckpointError(ValueError):
    """The checkpoint uses a Gemma-4 feature the fast path does not implement."""


class UnknownPresetError(ValueError):
    """The named shape preset does not exist."""


@dataclass(frozen=True)
class AttentionShape:
    """Per layer-type attention geometry and rotary parameters."""

    head_dim: int
    num_kv_heads: int
    rope_theta: float
    partial_rotary_factor: float = 1.0
    rope_type: str = "default"
    rope_factor: float = 1.0
    # Global layers of Gemma-4 derive values from the key projection (no v_proj).
    k_eq_v: bool = False


@dataclass(frozen=True)
class DecoderShape:
    """Everything about a checkpoint's architecture that the fast decoder depends on."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    layer_types: tuple[str, ...]
    attention: dict[str, AttentionShape]
    sliding_window: int
    num_kv_shared_layers: int = 0
    ple_dim: int = 0
    ple_vocab_size: int = 0
    final_logit_softcapping: float | None = None
    rms_norm_eps: float = 1e-6
    kv_source: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.kv_source:
            object.__setattr__(self, "kv_source", _kv_sources(self))

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    def owns_cache(self, layer: int) -> bool:
        """Whether `layer` computes its own keys and values (rather than reusing another's)."""
        return self.kv_source[layer] == layer


def _kv_sources(shape: DecoderShape) -> tuple[int, ...]:
    """For each layer, the layer whose KV cache it attends over.

    The last `num_kv_shared_layers` layers reuse the cache of the last earlier layer of the
    same type, as Gemma-4 E2B/E4B do.
    """
    first_shared = shape.num_layers - shape.num_kv_shared_layers
    sources = list(range(shape.num_layers))
    for layer in range(first_shared, shape.num_layers):
        kind = shape.layer_types[layer]
        owners = [i for i in range(first_shared) if shape.layer_types[i] == kind]
        if not owners:
            raise UnsupportedCheckpointError(
                f"layer {layer} ({kind}) shares KV but no earlier layer of that type owns a "
                "cache; check num_kv_shared_layers in the checkpoint's config.json"
            )
        sources[layer] = owners[-1]
    return tuple(sources)


def _geometry(config: Any, kind: str) -> tuple[int, int]:
    """Head dim and KV heads of one layer type across transformers 5.x config layouts."""
    per_layer = getattr(config, "per_layer_config", None)
    if per_layer is not None:
        resolved = per_layer[config.layer_types.index(kind)]
        return int(resolved.head_dim), int(resolved.num_key_value_heads)
    head_dim, kv_heads = int(config.head_dim), int(config.num_key_value_heads)
    if kind == SLIDING:
        return head_dim, kv_heads
    global_kv = getattr(config, "num_global_key_value_heads", None)
    if global_kv is not None and getattr(config, "attention_k_eq_v", False):
        kv_heads = int(global_kv)
    return int(getattr(config, "global_head_dim", None) or head_dim), kv_heads


def _attention_shape(config: Any, kind: str) -> AttentionShape:
    head_dim, kv_heads = _geometry(config, kind)
    rope = config.rope_parameters[kind]
    rope_type = rope.get("rope_type", "default")
    if rope_type not in ("default", "proportional"):
        raise UnsupportedCheckpointError(
            f"rope_type {rope_type!r} on {kind} layers is not supported by the fast backend; "
            "serve this checkpoint with the reference backend"
        )
    return AttentionShape(
        head_dim=head_dim,
        num_kv_heads=kv_heads,
        rope_theta=float(rope["rope_theta"]),
        partial_rotary_factor=float(rope.get("partial_rotary_factor", 1.0)),
        rope_type=rope_type,
        rope_factor=float(rope.get("factor", 1.0)),
        k_eq_v=kind == GLOBAL and bool(getattr(config, "attention_k_eq_v", False)),
    )


def layer_type_shapes(config: Any) -> dict[str, AttentionShape]:
    """Attention geometry and rotary parameters of each layer type of a Gemma-4 text config
    (the MTP assistant's decoder reads them without being a whole `DecoderShape`)."""
    return {kind: _attention_shape(config, kind) for kind in dict.fromkeys(config.layer_types)}


def _check_supported(config: Any) -> None:
    if getattr(config, "enable_moe_block", False):
        raise UnsupportedCheckpointError(
            "mixture-of-experts Gemma-4 checkpoints are not supported by the fast backend; "
            "serve them with the reference backend"
        )
    if getattr(config, "use_double_wide_mlp", False):
        raise UnsupportedCheckpointError(
            "use_double_wide_mlp checkpoints are not supported by the fast backend; "
            "serve them with the reference backend"
        )
    if getattr(config, "use_bidirectional_attention", None) == "all":
        raise UnsupportedCheckpointError("bidirectional Gemma-4 checkpoints cannot decode")
    if getattr(config, "hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        raise UnsupportedCheckpointError(
            f"hidden_activation {config.hidden_activation!r} is not supported; "
            "the fast backend implements gelu_pytorch_tanh"
        )


def shape_from_config(config: Any) -> DecoderShape:
    """Read a transformers `Gemma4TextConfig` (or its `text_config`) into a `DecoderShape`."""
    config = getattr(config, "text_config", None) or config
    _check_supported(config)
    kinds = dict.fromkeys(config.layer_types)
    unknown = set(kinds) - {SLIDING, GLOBAL}
    if unknown:
        raise UnsupportedCheckpointError(f"layer types {sorted(unknown)} are not supported")
    attention = {kind: _attention_shape(config, kind) for kind in kinds}
    return DecoderShape(
        vocab_size=int(config.vocab_size),
        hidden_size=int(config.hidden_size),
        intermediate_size=int(config.intermediate_size),
        num_heads=int(config.num_attention_heads),
        layer_types=tuple(config.layer_types),
        attention=attention,
        sliding_window=int(config.sliding_window),
        num_kv_shared_layers=int(getattr(config, "num_kv_shared_layers", 0) or 0),
        ple_dim=int(getattr(config, "hidden_size_per_layer_input", 0) or 0),
        ple_vocab_size=int(getattr(config, "vocab_size_per_layer_input", 0) or 0),
        final_logit_softcapping=config.final_logit_softcapping,
        rms_norm_eps=float(config.rms_norm_eps),
    )


# The Gemma 4 E4B text decoder (see docs/engine-performance.md for the byte count).
PRESETS: dict[str, dict[str, Any]] = {
    "gemma-4-e4b": {
        "vocab_size": 262_144,
        "hidden_size": 2560,
        "intermediate_size": 10_240,
        "num_hidden_layers": 42,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "global_head_dim": 512,
        "sliding_window": 512,
        "num_kv_shared_layers": 18,
        "hidden_size_per_layer_input": 256,
        "vocab_size_per_layer_input": 262_144,
        "final_logit_softcapping": 30.0,
        "attention_k_eq_v": True,
        "max_position_embeddings": 131_072,
    },
    # A few-megabyte model with every E4B feature, for smoke-testing the benchmark on CPU.
    "gemma-4-tiny": {
        "vocab_size": 512,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 12,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "global_head_dim": 32,
        "sliding_window": 16,
        "num_kv_shared_layers": 2,
        "hidden_size_per_layer_input": 8,
        "vocab_size_per_layer_input": 512,
        "final_logit_softcapping": 30.0,
        "attention_k_eq_v": True,
        "max_position_embeddings": 4096,
    },
}


def preset_config(name: str) -> Any:
    """A transformers `Gemma4TextConfig` with a preset's shape (for random-weight benchmarks)."""
    from transformers import Gemma4TextConfig

    if name not in PRESETS:
        raise UnknownPresetError(
            f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}"
        )
    return Gemma4TextConfig(**PRESETS[name])
