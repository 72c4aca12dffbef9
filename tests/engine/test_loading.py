"""Loading finds a local Gemma-4 text checkpoint or says exactly what is wrong with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from swarmlab.engine.loading import (
    CheckpointError,
    load_config,
    load_model,
    load_tokenizer,
    read_generation_stop_ids,
    resolve_device,
    resolve_dtype,
)


@pytest.fixture
def checkpoint_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "ckpt"))


def test_loads_the_tiny_model_in_eval_mode(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir)
    assert type(model).__name__ == "Gemma4ForCausalLM"
    assert not model.training
    assert model.lm_head.weight.dtype == torch.float32
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied


def test_loads_in_bfloat16(tiny_model_dir: Path) -> None:
    assert load_model(tiny_model_dir, dtype="bfloat16").lm_head.weight.dtype == torch.bfloat16


def test_a_missing_directory_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not a directory.*make-tiny"):
        load_config(tmp_path / "absent")


@pytest.mark.parametrize(
    ("removed", "named"),
    [
        ("config.json", "config.json"),
        ("tokenizer.json", "tokenizer.json"),
        ("model.safetensors", "model.safetensors"),
    ],
)
def test_each_missing_file_is_named(checkpoint_copy: Path, removed: str, named: str) -> None:
    (checkpoint_copy / removed).unlink()
    with pytest.raises(CheckpointError, match=f"lacks {named}"):
        load_model(checkpoint_copy)


def test_another_model_type_is_refused(checkpoint_copy: Path) -> None:
    config = json.loads((checkpoint_copy / "config.json").read_text())
    config["model_type"] = "llama"
    (checkpoint_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match="model_type 'llama', not one of 'gemma4_text', 'gemma4'"
    ):
        load_config(checkpoint_copy)


def test_unreadable_config_json_is_refused(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_config(checkpoint_copy)


def test_missing_weights_are_refused_not_randomly_filled(checkpoint_copy: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(checkpoint_copy / "model.safetensors")
    del weights["model.norm.weight"]
    save_file(weights, checkpoint_copy / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"lacks 1 weights \(model\.norm\.weight\)"):
        load_model(checkpoint_copy)


def test_a_broken_tokenizer_is_refused(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointError, match="cannot load the tokenizer"):
        load_tokenizer(checkpoint_copy)


@pytest.mark.parametrize("dtype", ["float16", "int8", "fp32"])
def test_unsupported_dtypes_are_refused(dtype: str) -> None:
    with pytest.raises(CheckpointError, match="float32, bfloat16"):
        resolve_dtype(dtype)


@pytest.mark.parametrize("device", ["gpu", "mps", "meta"])
def test_unsupported_devices_are_refused(device: str) -> None:
    with pytest.raises(CheckpointError, match="pass cpu, cuda or cuda:N"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_a_gpu_says_to_use_cpu() -> None:
    with pytest.raises(CheckpointError, match="--device cpu"):
        resolve_device("cuda")


def test_stop_ids_come_from_the_generation_config(tiny_model_dir: Path) -> None:
    config, tokenizer = load_config(tiny_model_dir), load_tokenizer(tiny_model_dir)
    assert read_generation_stop_ids(tiny_model_dir, config, tokenizer) == {1, 5}


def test_stop_ids_fall_back_to_config_eos(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "generation_config.json").unlink()
    config, tokenizer = load_config(checkpoint_copy), load_tokenizer(checkpoint_copy)
    assert read_generation_stop_ids(checkpoint_copy, config, tokenizer) == {1}


def _make_multimodal_checkpoint(tiny: Path, out: Path) -> Path:
    """Google's release form: model_type `gemma4`, the tiny text decoder plus toy vision and
    audio towers, weights under `model.language_model.*` and the towers'."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    text = json.loads((tiny / "config.json").read_text())
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
    vision |= {"num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16}
    audio = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    audio |= {"output_proj_dims": 32, "subsampling_conv_channels": [8, 4]}
    config = Gemma4Config(text_config=text, vision_config=vision, audio_config=audio)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        Gemma4ForConditionalGeneration(config).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(tiny / name, out / name)
    return out


def test_a_multimodal_checkpoint_loads_whole_and_decodes_text(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from swarmlab.engine.loading import text_config
    from swarmlab.engine.reference import ReferenceBackend

    checkpoint = _make_multimodal_checkpoint(tiny_model_dir, tmp_path / "multimodal")
    model = load_model(checkpoint)
    assert type(model).__name__ == "Gemma4ForConditionalGeneration"
    config = load_config(checkpoint)
    assert text_config(config).vocab_size == 512
    assert read_generation_stop_ids(checkpoint, config, load_tokenizer(checkpoint)) == {1, 5}
    prompt = [2, 45, 322, 81, 84] * 5
    model.generation_config.eos_token_id = None
    expected = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=24)
    assert ReferenceBackend(model).generate(prompt, 24, None) == expected[0, len(prompt) :].tolist()
