"""Serve the model with vLLM's OpenAI-compatible server, tuned for one request at a time.

Reads MODEL_ID, SERVED_MODEL_NAME and PORT from the harness (falling back to manifest.json)
and the tuning knobs from the manifest's `env`. `MAX_NUM_BATCHED_TOKENS` bounds the prefill
chunk, which bounds the memory the PPL stage's `prompt_logprobs` needs (a full-vocabulary
float32 log-softmax per chunk).
"""

import json
import os
import sys
from pathlib import Path

manifest = json.loads(Path("manifest.json").read_text(encoding="utf-8"))
argv = [
    sys.executable,
    "-m",
    "vllm.entrypoints.openai.api_server",
    "--model",
    os.environ.get("MODEL_ID") or manifest["model_id"],
    "--served-model-name",
    os.environ.get("SERVED_MODEL_NAME") or manifest["served_model_name"],
    "--host",
    "127.0.0.1",
    "--port",
    os.environ.get("PORT") or str(manifest.get("port", 8000)),
    "--dtype",
    "bfloat16",
    "--max-model-len",
    os.environ.get("MAX_MODEL_LEN", "4096"),
    "--gpu-memory-utilization",
    os.environ.get("GPU_MEMORY_UTILIZATION", "0.90"),
    "--max-num-batched-tokens",
    os.environ.get("MAX_NUM_BATCHED_TOKENS", "512"),
    "--max-num-seqs",
    "1",
]
sys.stdout.write(f"serve.py: {' '.join(argv)}\n")
sys.stdout.flush()
os.execv(sys.executable, argv)
