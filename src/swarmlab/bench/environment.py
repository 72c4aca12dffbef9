"""The server's Python environment: the manifest's dependencies in an isolated, cached venv.

The venv is keyed by a hash of the dependency specs (plus the contents of any local wheel or
folder they name, and the base Python's version), so re-runs of the same submission reuse it.
It is built with `uv` when available, else `python -m venv` + pip, into a temporary folder that
is marked complete only once every install succeeded (a half-built environment is rebuilt,
never reused), under a file lock so concurrent runs of one submission build it once. It is
built in place (not renamed) because console scripts in a venv hard-code its path.

The venv sees the base interpreter's site-packages (`--system-site-packages`): what the manifest
lists is installed on top of, and wins over, the machine's stack (torch, CUDA), as the original
challenge's image did. A manifest without dependencies needs no venv and runs on the base
interpreter, as does `--no-install` (tests, development loops).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmlab.bench.errors import EnvironmentSetupError
from swarmlab.bench.runlog import RunLog, pump

DEFAULT_CACHE = Path.home() / ".cache" / "swarmlab" / "envs"
COMPLETE_MARKER = ".swarmlab-complete"


@dataclass(frozen=True)
class ServerEnvironment:
    """Where the server's `python` lives and how the environment was made."""

    python: Path
    kind: str  # "current" (base interpreter), "uv" or "venv"
    key: str | None = None

    @property
    def bin_dir(self) -> Path:
        """The folder to put first on PATH for the server."""
        return self.python.parent

    def describe(self) -> dict[str, Any]:
        """What run_environment.json records: kind, interpreter, installed distributions."""
        return {
            "kind": self.kind,
            "python": str(self.python),
            "key": self.key,
            "distributions": installed_distributions(self.python),
        }


def prepare_environment(
    dependencies: Sequence[str],
    submission: Path,
    log: RunLog,
    *,
    install: bool = True,
    cache_dir: Path = DEFAULT_CACHE,
    timeout_s: float = 1800.0,
) -> ServerEnvironment:
    """Return a ready environment for the server, building and caching it if needed."""
    base = Path(sys.executable)
    if not install or not dependencies:
        reason = "--no-install" if not install else "no dependencies"
        log.info(f"server environment: the harness's interpreter {base} ({reason})")
        return ServerEnvironment(base, "current")
    key = dependency_key(dependencies, submission)
    target = cache_dir / key
    tool = "uv" if shutil.which("uv") else "venv"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / COMPLETE_MARKER).is_file():
            log.info(f"server environment: cached {target}")
        else:
            log.info(f"server environment: building {target} with {tool}")
            _build(target, tool, dependencies, submission, log, timeout_s)
    return ServerEnvironment(_venv_python(target), tool, key)


def dependency_key(dependencies: Sequence[str], submission: Path) -> str:
    """A short hash naming the environment for these specs and local files."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version_info[:3]}|{sys.executable}".encode())
    for spec in sorted(dependencies):
        digest.update(b"\0" + spec.encode())
        local = submission / spec
        if local.is_file():
            digest.update(hashlib.sha256(local.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _build(
    target: Path,
    tool: str,
    dependencies: Sequence[str],
    submission: Path,
    log: RunLog,
    timeout_s: float,
) -> None:
    shutil.rmtree(target, ignore_errors=True)
    python = _venv_python(target)
    if tool == "uv":
        create = ["uv", "venv", "--system-site-packages", "--python", sys.executable, str(target)]
        add = ["uv", "pip", "install", "--python", str(python), *dependencies]
    else:
        create = [sys.executable, "-m", "venv", "--system-site-packages", str(target)]
        add = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *dependencies]
    for argv in (create, add):
        _run_logged(argv, submission, log, timeout_s)
    (target / COMPLETE_MARKER).write_text(json.dumps(list(dependencies)), encoding="utf-8")


def _run_logged(argv: list[str], cwd: Path, log: RunLog, timeout_s: float) -> None:
    log.info(f"$ {' '.join(argv)}")
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    thread = pump(proc.stdout, log, "install")
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise EnvironmentSetupError(
            f"installing dependencies took over {timeout_s:g} s; trim `dependencies`"
        ) from None
    finally:
        thread.join(timeout=5)
    if code != 0:
        raise EnvironmentSetupError(
            f"`{' '.join(argv[:4])} ...` failed with exit code {code}; fix `dependencies` in "
            f"manifest.json (full output in server.log). Last output:\n{log.tail()}"
        )


def _venv_python(root: Path) -> Path:
    return root / ("Scripts" if sys.platform == "win32" else "bin") / "python"


_LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))"
)


def installed_distributions(python: Path) -> list[str]:
    """`name==version` of every distribution the interpreter sees (empty if it cannot say)."""
    try:
        out = subprocess.run(
            [str(python), "-c", _LIST_DISTRIBUTIONS],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError):
        return []
    return [str(item) for item in found] if isinstance(found, list) else []
