"""Serve the checkpoint at `model_id` with swarmlab's reference engine.

The harness runs this with cwd = the submission folder. Settings come from the harness's
environment (MODEL_ID, SERVED_MODEL_NAME, PORT), falling back to manifest.json, and from the
manifest's `env` (ENGINE_DEVICE: cpu, cuda or cuda:N; ENGINE_DTYPE: float32 or bfloat16;
ENGINE_THREADS: CPU threads for torch, where one thread beats many for small models).
The process replaces itself with the server, so the harness's signals reach it directly.
"""

import json
import os
import sys
from pathlib import Path

manifest = json.loads(Path("manifest.json").read_text(encoding="utf-8"))
model = os.environ.get("MODEL_ID") or str(Path(manifest["model_id"]).resolve())
argv = [
    sys.executable,
    "-m",
    "swarmlab.engine",
    "serve",
    "--model",
    model,
    "--host",
    "127.0.0.1",
    "--port",
    os.environ.get("PORT") or str(manifest.get("port", 8000)),
    "--served-model-name",
    os.environ.get("SERVED_MODEL_NAME") or manifest["served_model_name"],
    "--device",
    os.environ.get("ENGINE_DEVICE", "cpu"),
    "--dtype",
    os.environ.get("ENGINE_DTYPE", "float32"),
]
if os.environ.get("ENGINE_THREADS"):
    argv += ["--threads", os.environ["ENGINE_THREADS"]]
sys.stdout.write(f"serve.py: {' '.join(argv)}\n")
sys.stdout.flush()
os.execv(sys.executable, argv)
