"""The engine runs on a bare GPU machine: it imports no hub dependency and nothing else of
swarmlab, and its docs cover every command option and route it has."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.main import get_command

from swarmlab.engine.cli import app

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("fastapi", "uvicorn", "pydantic", "sqlalchemy", "alembic", "celery", "redis", "fsspec")


def test_importing_every_engine_module_loads_no_hub_dependency() -> None:
    # Triton kernels are CUDA-only and the CPU build of torch ships no triton: a module that
    # needs it may fail to import here, for that reason and no other.
    code = (
        "import importlib, pkgutil, sys, swarmlab.engine as e\n"
        "for m in pkgutil.walk_packages(e.__path__, 'swarmlab.engine.'):\n"
        "    if m.name.endswith('__main__'): continue\n"
        "    try: importlib.import_module(m.name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        if exc.name != 'triton': raise\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = result.stdout.split()
    assert [m for m in loaded if m.split(".")[0] in FORBIDDEN] == []
    others = [
        m for m in loaded if m.startswith("swarmlab.") and not m.startswith("swarmlab.engine")
    ]
    assert others == []


def test_docs_name_every_serve_option_and_route() -> None:
    docs = (ROOT / "docs" / "engine.md").read_text(encoding="utf-8")
    serve = get_command(app).commands["serve"]
    options = [opt for param in serve.params for opt in param.opts if opt.startswith("--")]
    assert options and [opt for opt in options if opt not in docs] == []
    server = (ROOT / "src" / "swarmlab" / "engine" / "server.py").read_text(encoding="utf-8")
    routes = set(re.findall(r'"(/(?:v1/)?[a-z/]+)"', server))
    assert {"/v1/models", "/v1/completions", "/tokenize"} <= routes
    assert [route for route in routes if f"`{route}" not in docs and f" {route}" not in docs] == []
