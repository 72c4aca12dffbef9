"""What a dead worker leaves behind is cleaned up; what a live one runs is not touched."""

from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

import pytest

from swarmlab.jobs.leftovers import RUNNING, job_folder, reap_leftovers

pytestmark = pytest.mark.slow  # starts real processes


def orphan_server(folder: Path) -> subprocess.Popen[bytes]:
    """A stand-in for an entry's server: its own session, working inside the job folder."""
    (folder / "submission").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["sleep", "600"], cwd=folder / "submission", start_new_session=True)


def test_a_dead_workers_job_folder_and_server_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / "job-dead"
    dead.mkdir()
    (dead / RUNNING).touch()  # its worker died: nobody holds the lock
    server = orphan_server(dead)
    assert reap_leftovers(tmp_path) == ["job-dead"]
    assert server.wait(timeout=30) == -9
    assert not dead.exists()


def test_a_live_job_is_left_alone(tmp_path: Path) -> None:
    with job_folder(tmp_path / "job-live") as live:
        server = orphan_server(live)
        try:
            assert reap_leftovers(tmp_path) == []
            assert server.poll() is None
        finally:
            server.kill()
            server.wait()
    assert reap_leftovers(tmp_path) == ["job-live"]


def test_job_folder_holds_its_lock_until_the_block_ends(tmp_path: Path) -> None:
    with (
        job_folder(tmp_path / "job") as root,
        (root / RUNNING).open() as probe,
        pytest.raises(BlockingIOError),
    ):
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert reap_leftovers(tmp_path / "missing") == []
