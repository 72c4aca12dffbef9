"""Cleaning up after a worker that died mid-job: its entry's server, and its job folder.

The harness starts each entry's server in a session of its own, so the server outlives a worker
killed with SIGKILL and keeps its port and its GPU. Every running job therefore holds an
exclusive lock on `<workdir>/<job>/.running`; when a worker starts, it takes the locks that no
live process holds, kills the processes still running inside those folders, and removes them.
A folder whose lock is held belongs to a live worker and is left alone, so several workers may
share one work folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

RUNNING = ".running"
PROC = Path("/proc")


@contextlib.contextmanager
def job_folder(root: Path) -> Iterator[Path]:
    """A fresh folder for one job, marked as running (locked) until the block ends."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    fd = os.open(root / RUNNING, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield root
    finally:
        os.close(fd)


def processes_inside(folder: Path) -> list[int]:
    """Processes whose working directory is inside ``folder`` (read from /proc)."""
    found = []
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").readlink()
        except OSError:
            continue  # gone, or not ours to inspect
        if cwd.is_relative_to(folder):
            found.append(int(entry.name))
    return found


def _kill_group_of(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        group = os.getpgid(pid)
        if group != os.getpgid(0):  # never our own group
            os.killpg(group, signal.SIGKILL)


def reap_leftovers(workdir: Path) -> list[str]:
    """Kill and remove what dead workers left in ``workdir``; the job folders cleaned."""
    cleaned: list[str] = []
    for lock in sorted(workdir.glob(f"*/{RUNNING}")) if workdir.is_dir() else ():
        fd = os.open(lock, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live worker is running this job
            folder = lock.parent.resolve()
            for pid in processes_inside(folder):
                _kill_group_of(pid)
            shutil.rmtree(folder, ignore_errors=True)
            cleaned.append(folder.name)
        finally:
            os.close(fd)
    return cleaned
