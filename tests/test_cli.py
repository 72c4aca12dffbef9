"""The console script starts light and lists every command group."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from swarmlab.cli import app


def test_help_lists_command_groups() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("agent", "bench", "engine"):
        assert group in result.output


def test_importing_the_cli_loads_no_heavy_dependency() -> None:
    """`swarmlab engine ...` must run where the hub's dependencies are absent (the GPU box)."""
    code = (
        "import sys, swarmlab.cli; "
        "heavy = [m for m in ('fastapi', 'sqlalchemy', 'torch', 'transformers', 'celery', 'pydantic') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
