"""Serve `model_id` with `swarmlab engine serve --backend fast`.

The harness runs this with cwd = the submission folder and passes MODEL_ID, SERVED_MODEL_NAME
and PORT (manifest.json supplies what it leaves out); ENGINE_DEVICE and ENGINE_DTYPE pick the
device and dtype, and the SWARMLAB_FAST_* variables reach the backend unchanged (see
docs/engine-performance.md). The server replaces this process, so signals reach it directly.
"""

import json
import os
import sys
from pathlib import Path

settings = json.loads(Path("manifest.json").read_text(encoding="utf-8"))
options = {
    "--model": os.environ.get("MODEL_ID") or str(Path(settings["model_id"]).resolve()),
    "--port": os.environ.get("PORT") or str(settings.get("port", 8000)),
    "--served-model-name": os.environ.get("SERVED_MODEL_NAME") or settings["served_model_name"],
    "--device": os.environ.get("ENGINE_DEVICE", "cuda"),
    "--dtype": os.environ.get("ENGINE_DTYPE", "bfloat16"),
    "--backend": "fast",
    "--host": "127.0.0.1",
}
argv = [sys.executable, "-m", "swarmlab.engine", "serve"]
for flag, value in options.items():
    argv += [flag, value]
sys.stdout.write(f"serve.py: {' '.join(argv)}\n")
sys.stdout.flush()
os.execv(sys.executable, argv)
