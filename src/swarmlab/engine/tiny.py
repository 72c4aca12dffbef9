"""Build a tiny, random-weight Gemma-4 text checkpoint, entirely offline.

The tiny model exists so that the whole pipeline (server, harness, identity checks) runs on a
2-core CPU in CI. It keeps every architectural feature of Gemma 4 E4B that an inference engine
has to get right: sliding-window and global layers (the global ones with a wider head and
K = V), layers that reuse an earlier layer's KV cache, per-layer embeddings (PLE), tied
embeddings and final logit soft-capping. The tokenizer is a byte-level BPE trained on a small
generated corpus, with Gemma's special tokens and chat template.

Everything is deterministic from the seed: the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import Gemma4TextConfig

PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
)
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN)  # ids 0..5, in this order

# Gemma's turn format. A system message is folded into the first user turn, as Gemma does,
# because the format has no system role.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = message['content'] | trim + '\n\n' %}"
    "{% else %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ ns.system }}{{ message['content'] | trim }}<end_of_turn>\n"
    "{% set ns.system = '' %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True)
class TinyShape:
    """The tiny model's dimensions. Six layers give the pattern S S G S S G, where the last two
    layers (one sliding, one global) reuse the KV cache of layers 3 and 2."""

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    global_head_dim: int = 32
    num_global_kv_heads: int = 1
    ple_dim: int = 16
    sliding_window: int = 16
    num_kv_shared_layers: int = 2
    max_positions: int = 8192
    layer_types: tuple[str, ...] = (
        "sliding_attention",
        "sliding_attention",
        "full_attention",
        "sliding_attention",
        "sliding_attention",
        "full_attention",
    )


_TOPICS = {
    "maths": "sum product prime number integer fraction equation root square triangle angle "
    "proof theorem matrix vector limit series function graph area volume ratio",
    "science": "atom energy cell protein light wave force mass orbit planet star gravity "
    "heat pressure electron molecule carbon oxygen water field",
    "code": "def return class import list dict loop index array string value print while "
    "if else for in None True False self",
    "reasoning": "because therefore if then so first next finally suppose assume consider "
    "answer question step reason explain why how what which",
}
_GLUE = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "is",
    "in",
    "that",
    "it",
    "for",
    "with",
    "as",
    "on",
    "by",
    "this",
    "are",
    "we",
    "can",
    "be",
]


def training_corpus(lines: int = 3000) -> list[str]:
    """A fixed, generated corpus (no download): sentences mixing topic words, glue words,
    numbers, code-like fragments and punctuation, so the BPE learns useful merges."""
    rng = random.Random(20260625)
    vocab = [word for words in _TOPICS.values() for word in words.split()]
    corpus = []
    for _ in range(lines):
        words = [
            rng.choice(vocab if rng.random() < 0.5 else _GLUE) for _ in range(rng.randint(4, 14))
        ]
        if rng.random() < 0.3:
            words.append(f"{rng.randint(0, 999)} = {rng.randint(0, 99)} * {rng.randint(0, 99)}")
        if rng.random() < 0.2:
            words.insert(0, f"x_{rng.randint(0, 9)} = [{rng.randint(0, 9)}, {rng.randint(0, 9)}]:")
        corpus.append(" ".join(words).capitalize() + rng.choice(".?!,;:"))
    return corpus


def build_tokenizer(vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE of exactly `vocab_size` entries (special tokens first)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer)
    bos_id = SPECIAL_TOKENS.index(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    return tokenizer


def tokenizer_config(shape: TinyShape) -> dict[str, Any]:
    """`tokenizer_config.json`: special tokens and the chat template."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": UNK,
        "additional_special_tokens": [START_OF_TURN, END_OF_TURN],
        "add_bos_token": True,
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": shape.max_positions,
        "padding_side": "left",
    }


def model_config(shape: TinyShape) -> Gemma4TextConfig:
    """A `Gemma4TextConfig` with every Gemma-4 feature switched on, at toy size."""
    from transformers import Gemma4TextConfig

    # global_head_dim and num_global_key_value_heads are read by __post_init__ (not fields).
    options: dict[str, Any] = dict(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=len(shape.layer_types),
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        head_dim=shape.head_dim,
        global_head_dim=shape.global_head_dim,
        num_global_key_value_heads=shape.num_global_kv_heads,
        layer_types=list(shape.layer_types),
        sliding_window=shape.sliding_window,
        final_logit_softcapping=30.0,
        vocab_size_per_layer_input=shape.vocab_size,
        hidden_size_per_layer_input=shape.ple_dim,
        attention_k_eq_v=True,
        num_kv_shared_layers=shape.num_kv_shared_layers,
        max_position_embeddings=shape.max_positions,
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        eos_token_id=SPECIAL_TOKENS.index(EOS),
        bos_token_id=SPECIAL_TOKENS.index(BOS),
        tie_word_embeddings=True,
        architectures=["Gemma4ForCausalLM"],
        dtype="float32",
    )
    return Gemma4TextConfig(**options)


def generation_config() -> dict[str, Any]:
    """`generation_config.json`: greedy, stopping at `<eos>` or `<end_of_turn>` as Gemma does."""
    return {
        "bos_token_id": SPECIAL_TOKENS.index(BOS),
        "eos_token_id": [SPECIAL_TOKENS.index(EOS), SPECIAL_TOKENS.index(END_OF_TURN)],
        "pad_token_id": SPECIAL_TOKENS.index(PAD),
        "do_sample": False,
    }


def hub_config_dict(config: Gemma4TextConfig, shape: TinyShape) -> dict[str, Any]:
    """`config.json` in the form Google's Gemma-4 checkpoints use: the global layers' head size
    and KV heads as `global_head_dim` / `num_global_key_value_heads` rather than transformers'
    internal per-layer overrides, so that every transformers 5.x release (and any engine that
    reads config.json itself) understands it."""
    data = config.to_dict()
    data.pop("per_layer_config", None)
    data["global_head_dim"] = shape.global_head_dim
    data["num_global_key_value_heads"] = shape.num_global_kv_heads
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def make_tiny(out: Path, seed: int = 0, shape: TinyShape | None = None) -> Path:
    """Write the tiny checkpoint into `out` (created if needed) and return `out`.

    The default random initialisation (normal, std 0.02, unit norms) already yields varied
    greedy continuations because the embeddings are scaled by sqrt(hidden_size) on the way in
    and the head is tied to them, so no extra rescaling is needed. The tied head is stored
    once, as the embedding, like Google's checkpoints.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import Gemma4ForCausalLM

    shape = shape or TinyShape()
    out.mkdir(parents=True, exist_ok=True)
    config = model_config(shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma4ForCausalLM(config).eval()
    weights = {
        name: t.contiguous() for name, t in model.state_dict().items() if name != "lm_head.weight"
    }
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", hub_config_dict(config, shape))
    build_tokenizer(shape.vocab_size).save(str(out / "tokenizer.json"))
    _write_json(out / "tokenizer_config.json", tokenizer_config(shape))
    _write_json(out / "generation_config.json", generation_config())
    return out
