"""Load a Gemma-4 checkpoint from a local directory, never from the network.

A checkpoint directory holds `config.json`, the weights as `model.safetensors` (or shards
with `model.safetensors.index.json`) and the tokenizer (`tokenizer.json` +
`tokenizer_config.json`); `swarmlab engine make-tiny DIR` writes one. Two kinds are served:
a text decoder (model_type `gemma4_text`, loaded as `Gemma4ForCausalLM`) and Google's
multimodal release (model_type `gemma4`, e.g. gemma-4-E4B-it, loaded whole as
`Gemma4ForConditionalGeneration`, since the challenge keeps every modality loaded; the engine
feeds it text only). Every failure raises `CheckpointError` saying what to pass instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import (
        PreTrainedConfig,
        PreTrainedModel,
        PreTrainedTokenizerBase,
    )

DTYPES = ("float32", "bfloat16")
MODEL_CLASSES = {"gemma4_text": "Gemma4ForCausalLM", "gemma4": "Gemma4ForConditionalGeneration"}
_HINT = "pass a local Gemma-4 checkpoint directory (build a tiny one with `swarmlab engine make-tiny DIR`)"


class CheckpointError(Exception):
    """The directory is not a loadable Gemma-4 checkpoint, or the device or dtype is unusable."""


def _offline() -> None:
    """Forbid hub downloads for anything transformers or huggingface_hub does from here on."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def check_checkpoint_dir(path: Path) -> Path:
    """Return `path` resolved, or raise naming every missing file."""
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a directory: {_HINT}")
    missing = [name for name in ("config.json", "tokenizer.json") if not (path / name).is_file()]
    if not any(
        (path / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")
    ):
        missing.append("model.safetensors (or model.safetensors.index.json with its shards)")
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: {_HINT}")
    return path.resolve()


def read_config_json(path: Path) -> dict[str, Any]:
    """The checkpoint's `config.json` as a dict, checked to describe a Gemma-4 model."""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path / 'config.json'} is not readable JSON ({exc}): {_HINT}"
        ) from exc
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type not in MODEL_CLASSES:
        raise CheckpointError(
            f"{path / 'config.json'} has model_type {model_type!r}, not one of "
            f"{', '.join(map(repr, MODEL_CLASSES))}: this engine serves Gemma-4 models only; {_HINT}"
        )
    return data


def load_config(path: Path) -> PreTrainedConfig:
    """The checkpoint's config: a `Gemma4TextConfig`, or a `Gemma4Config` holding one."""
    _offline()
    from transformers import AutoConfig

    path = check_checkpoint_dir(path)
    read_config_json(path)
    return AutoConfig.from_pretrained(path, local_files_only=True)


def text_config(config: PreTrainedConfig) -> PreTrainedConfig:
    """The text decoder's config (vocabulary, context, eos), for either kind of checkpoint."""
    return config.get_text_config()


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, with its chat template."""
    _offline()
    from transformers import AutoTokenizer

    path = check_checkpoint_dir(path)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # a malformed tokenizer.json fails in many ways (KeyError, ...)
        raise CheckpointError(f"cannot load the tokenizer in {path} ({exc}): {_HINT}") from exc


def _ids(value: object) -> set[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, int) and not isinstance(v, bool)}
    return set()


def read_generation_stop_ids(
    path: Path, config: PreTrainedConfig, tokenizer: PreTrainedTokenizerBase
) -> set[int]:
    """The ids that end a generation: `generation_config.json`'s `eos_token_id` (Gemma lists
    `<eos>` and `<end_of_turn>` there), else config.json's, plus the tokenizer's eos."""
    stop: set[int] = set()
    generation_config = path / "generation_config.json"
    if generation_config.is_file():
        try:
            stop = _ids(
                json.loads(generation_config.read_text(encoding="utf-8")).get("eos_token_id")
            )
        except (OSError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"{generation_config} is not a readable JSON object ({exc}): fix or delete it"
            ) from exc
    if not stop:
        stop = _ids(text_config(config).eos_token_id)
    return stop | _ids(tokenizer.eos_token_id)


def resolve_device(device: str) -> torch.device:
    """`cpu`, `cuda` or `cuda:N`, checked against the hardware present."""
    import torch

    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise CheckpointError(f"unknown device {device!r}: pass cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(
            f"device {device!r} asked for, but CUDA is not available here: pass --device cpu"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise CheckpointError(f"device {device!r} is not supported: pass cpu, cuda or cuda:N")
    return resolved


def resolve_dtype(dtype: str) -> torch.dtype:
    """`float32` or `bfloat16` as a torch dtype."""
    import torch

    if dtype not in DTYPES:
        raise CheckpointError(f"dtype {dtype!r} is not supported: pass one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def load_model(path: Path, device: str = "cpu", dtype: str = "float32") -> PreTrainedModel:
    """The checkpoint as a `Gemma4ForCausalLM` (or, for a multimodal checkpoint,
    `Gemma4ForConditionalGeneration`) in eval mode on `device`, weights in `dtype`."""
    _offline()
    import transformers
    from transformers.utils import logging as hf_logging

    torch_device, torch_dtype = resolve_device(device), resolve_dtype(dtype)
    config = load_config(path)
    model_class = getattr(transformers, MODEL_CLASSES[config.model_type])
    hf_logging.disable_progress_bar()
    return _weights(model_class, path, config, torch_dtype, _HINT).to(torch_device).eval()


def _weights(
    model_class: Any, path: Path, config: PreTrainedConfig, dtype: torch.dtype, hint: str
) -> Any:
    try:
        loaded: Any = model_class.from_pretrained(
            path, config=config, dtype=dtype, local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot load the weights in {path} ({exc}): {hint}") from exc
    model, info = loaded
    # transformers fills missing weights with random values; a reference must refuse instead.
    if missing := sorted(info.get("missing_keys", ())):
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise CheckpointError(f"{path} lacks {len(missing)} weights ({shown}): {hint}")
    return model


ASSISTANT_MODEL_TYPE = "gemma4_assistant"
_ASSISTANT_HINT = (
    "pass a local Gemma 4 MTP assistant directory (config.json with model_type "
    "gemma4_assistant, and its safetensors weights)"
)


def is_assistant_checkpoint(path: Path) -> bool:
    """Whether `path` holds a Gemma 4 MTP assistant: config.json's model_type is
    `gemma4_assistant` (a drafter that reads the target's hidden state and KV cache)."""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") == ASSISTANT_MODEL_TYPE


def load_assistant(path: Path, device: str = "cpu", dtype: str = "float32") -> PreTrainedModel:
    """A Gemma 4 MTP assistant checkpoint as transformers' `Gemma4AssistantForCausalLM`, in
    eval mode on `device`, weights in `dtype`. It needs no tokenizer: it drafts in the
    target's vocabulary."""
    _offline()
    import transformers
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    torch_device, torch_dtype = resolve_device(device), resolve_dtype(dtype)
    if not is_assistant_checkpoint(path):
        raise CheckpointError(
            f"{path / 'config.json'} is not a gemma4_assistant config: {_ASSISTANT_HINT}"
        )
    model_class = getattr(transformers, "Gemma4AssistantForCausalLM", None)
    if model_class is None:
        raise CheckpointError(
            f"transformers {transformers.__version__} has no Gemma4AssistantForCausalLM: "
            "install transformers 5.17 or later"
        )
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    hf_logging.disable_progress_bar()
    model = _weights(model_class, path, config, torch_dtype, _ASSISTANT_HINT)
    return model.to(torch_device).eval()
