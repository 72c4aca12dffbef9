"""`make-tiny`: deterministic, small, and really a Gemma-4 text model with every feature on."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from swarmlab.cli import app
from swarmlab.engine.tiny import CHAT_TEMPLATE, make_tiny

FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
}


def _contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = _contents(make_tiny(tmp_path / "a", seed=7))
    second = _contents(make_tiny(tmp_path / "b", seed=7))
    assert set(first) == FILES
    assert first == second


def test_another_seed_changes_the_weights_only(tmp_path: Path, tiny_model_dir: Path) -> None:
    other = _contents(make_tiny(tmp_path / "other", seed=1))
    base = _contents(tiny_model_dir)
    assert other["model.safetensors"] != base["model.safetensors"]
    assert {name: other[name] for name in FILES - {"model.safetensors"}} == {
        name: base[name] for name in FILES - {"model.safetensors"}
    }


def test_config_has_sliding_global_shared_kv_and_per_layer_embeddings(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir, local_files_only=True)
    assert config.model_type == "gemma4_text"
    assert {"sliding_attention", "full_attention"} == set(config.layer_types)
    assert config.layer_types[-1] == "full_attention"
    global_layer = config.layer_types.index("full_attention")
    sliding_layer = config.layer_types.index("sliding_attention")
    assert (
        config.per_layer_config[global_layer].head_dim
        == 2 * config.per_layer_config[sliding_layer].head_dim
    )
    # the last layers reuse the KV cache of an earlier layer of their type: both types do
    shared = config.layer_types[-config.num_kv_shared_layers :]
    assert config.num_kv_shared_layers == 2 and set(shared) == set(config.layer_types)
    assert (
        config.hidden_size_per_layer_input > 0
        and config.vocab_size_per_layer_input == config.vocab_size
    )
    assert config.attention_k_eq_v and config.tie_word_embeddings
    assert config.final_logit_softcapping == 30.0
    assert 16 <= config.sliding_window <= 32


def test_config_json_uses_the_hub_form_of_global_layer_sizes(tiny_model_dir: Path) -> None:
    raw = json.loads((tiny_model_dir / "config.json").read_text())
    assert raw["global_head_dim"] == 32 and raw["num_global_key_value_heads"] == 1
    assert "per_layer_config" not in raw


def test_tokenizer_has_gemma_special_tokens_and_chat_template(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    assert tokenizer.encode("<end_of_turn>", add_special_tokens=False) == [5]
    assert tokenizer("Hello world").input_ids[0] == tokenizer.bos_token_id
    assert tokenizer.chat_template == CHAT_TEMPLATE
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi "}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert (
        rendered == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_tokenizer_round_trips_text(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    text = "Prove that the sum of two even integers is even: 2a + 2b = 2(a + b). ü ∑"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert len(ids) < len(text.encode())  # the BPE learnt merges
    assert tokenizer.decode(ids) == text


def test_generation_config_stops_at_eos_and_end_of_turn(tiny_model_dir: Path) -> None:
    raw = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert raw["eos_token_id"] == [1, 5]


def test_make_tiny_command_writes_a_checkpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["engine", "make-tiny", str(tmp_path / "out"), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == FILES
