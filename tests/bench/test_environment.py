"""Server environments: built once per dependency set, cached, failures explained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.fixtures.bench import MakeSubmission, fast_config

from swarmlab.bench.environment import COMPLETE_MARKER, dependency_key, prepare_environment
from swarmlab.bench.errors import EnvironmentSetupError
from swarmlab.bench.runlog import RunLog
from swarmlab.bench.runner import run_benchmark


def test_key_depends_on_specs_and_local_files(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg.whl"
    wheel.write_bytes(b"one")
    first = dependency_key(["a==1", "pkg.whl"], tmp_path)
    assert first == dependency_key(["pkg.whl", "a==1"], tmp_path)  # order does not matter
    assert first != dependency_key(["a==2", "pkg.whl"], tmp_path)
    wheel.write_bytes(b"two")
    assert first != dependency_key(["a==1", "pkg.whl"], tmp_path)


def test_no_dependencies_or_no_install_use_this_interpreter(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "log")
    assert prepare_environment([], tmp_path, log, cache_dir=tmp_path).kind == "current"
    skipped = prepare_environment(["x==1"], tmp_path, log, install=False, cache_dir=tmp_path)
    assert skipped.kind == "current"
    log.close()
    assert "--no-install" in (tmp_path / "log").read_text("utf-8")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is not None, reason="exercises the venv + pip path")
def test_venv_is_built_once_and_reused(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "log")
    cache = tmp_path / "envs"
    # httpx is already in the base site-packages, which the venv sees: no download needed.
    env = prepare_environment(["httpx"], tmp_path, log, cache_dir=cache)
    assert env.kind == "venv"
    assert env.python.is_file()
    assert (cache / env.key / COMPLETE_MARKER).is_file()  # type: ignore[operator]
    again = prepare_environment(["httpx"], tmp_path, log, cache_dir=cache)
    assert again.python == env.python
    log.close()
    assert "cached" in (tmp_path / "log").read_text("utf-8")


@pytest.mark.slow
def test_failed_install_is_explained_and_not_cached(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "log")
    cache = tmp_path / "envs"
    with pytest.raises(EnvironmentSetupError, match="fix `dependencies`"):
        prepare_environment(["./missing-1.0-py3-none-any.whl"], tmp_path, log, cache_dir=cache)
    log.close()
    assert not list(cache.glob(f"*/{COMPLETE_MARKER}"))
    assert "[install]" in (tmp_path / "log").read_text("utf-8")


@pytest.mark.slow
def test_run_serves_from_the_built_environment(
    make_submission: MakeSubmission, tmp_path: Path
) -> None:
    submission = make_submission(dependencies=["httpx"])
    state = tmp_path / "state"
    config = fast_config(submission, state, install=True, env_cache_dir=tmp_path / "envs")
    result = run_benchmark(config)
    assert result.ok, result.error
    environment = json.loads((state / "run_environment.json").read_text("utf-8"))
    assert environment["server"]["kind"] in ("venv", "uv")
    python = environment["server"]["python"]
    assert python.startswith(str(tmp_path / "envs"))
    assert json.loads((state / "server.json").read_text("utf-8"))["argv"][0] == python
