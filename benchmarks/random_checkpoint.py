"""Write a random-weight Gemma-4 checkpoint of a named shape, for serving benchmarks.

The fast backend serves checkpoints only (`engine serve --model DIR`), and the GPU machine
cannot fetch Google's weights, so the GPU-pool benchmark serves random weights of the real
shape (`--preset gemma-4-e4b`, the preset `swarmlab engine bench --random-weights` uses): decode
speed depends on the shapes, not the values. The tokenizer is the tiny model's (512 ids, Gemma's
chat template and special-token ids); ids it does not know decode to nothing, which the harness
never needs, since it counts tokens by id.

    python benchmarks/random_checkpoint.py OUT --preset gemma-4-e4b --device cuda
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def write_checkpoint(out: Path, preset: str, device: str, seed: int) -> Path:
    """Random bf16 weights of ``preset`` (tied head stored once) plus the tiny tokenizer."""
    import torch
    from safetensors.torch import save_file

    from swarmlab.engine.bench import random_transformers_model
    from swarmlab.engine.fast.config import PRESETS
    from swarmlab.engine.tiny import make_tiny

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tiny:
        make_tiny(Path(tiny), seed)
        for name in TOKENIZER_FILES:
            shutil.copy(Path(tiny) / name, out / name)
    model = random_transformers_model(preset, torch.device(device), seed)
    weights = {
        name: tensor.contiguous()
        for name, tensor in model.state_dict().items()
        if name != "lm_head.weight"
    }
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("per_layer_config", None)  # the preset's own keys below say the same, portably
    config.update(PRESETS[preset])
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="Checkpoint directory to write.")
    parser.add_argument("--preset", default="gemma-4-e4b", help="Shape (swarmlab.engine.fast).")
    parser.add_argument("--device", default="cuda", help="Where the weights are drawn.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    write_checkpoint(args.out, args.preset, args.device, args.seed)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e9
    print(f"wrote {args.out}: {args.preset}, {size:.2f} GB in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
