"""GPU slots: one job per device, each process pinned, slots safe under threads and processes.

Runs on CPU: devices are fake ids; the pinning is checked in the environment a real child
process sees.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from swarmlab.jobs.gpus import GpuPool, GpuSpecError, NoFreeGpu, parse_gpus, pinned_env


@pytest.mark.parametrize(
    ("spec", "inherited", "devices"),
    [
        ("2", None, ["0", "1"]),
        ("0,3", None, ["0", "3"]),
        (" 5 ", None, ["0", "1", "2", "3", "4"]),
        ("2", "4,5,6", ["4", "5"]),
        ("1,2", "7", ["1", "2"]),
    ],
)
def test_parse_gpus(spec: str, inherited: str | None, devices: list[str]) -> None:
    assert parse_gpus(spec, inherited) == devices


@pytest.mark.parametrize(
    ("spec", "inherited"), [("0", None), ("1,1", None), ("1,", None), ("3", "0,1")]
)
def test_parse_gpus_refuses_nonsense(spec: str, inherited: str | None) -> None:
    with pytest.raises(GpuSpecError, match="--gpus"):
        parse_gpus(spec, inherited)


def test_pool_needs_a_device(tmp_path: Path) -> None:
    with pytest.raises(GpuSpecError):
        GpuPool([], tmp_path)


@pytest.mark.slow
def test_child_process_sees_only_its_device(tmp_path: Path) -> None:
    pool = GpuPool(["3", "7"], tmp_path)
    with pool.slot() as first, pool.slot() as second:
        seen = [
            subprocess.run(
                [sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
                env=slot.env({"PATH": os.environ["PATH"], "CUDA_VISIBLE_DEVICES": "0,1,2,3"}),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            for slot in (first, second)
        ]
    assert seen == ["3", "7"]


def test_pinned_env_keeps_the_rest() -> None:
    assert pinned_env("2", {"HOME": "/h"}) == {"HOME": "/h", "CUDA_VISIBLE_DEVICES": "2"}


def test_all_busy_times_out_then_frees(tmp_path: Path) -> None:
    pool = GpuPool(["0"], tmp_path)
    with pool.slot(), pytest.raises(NoFreeGpu, match="1 GPUs stayed busy"), pool.slot(timeout=0.1):
        pass
    with pool.slot(timeout=0) as slot:
        assert slot.device == "0"


def test_threads_run_two_at_a_time_each_on_its_own_device(tmp_path: Path) -> None:
    pool = GpuPool(["0", "1"], tmp_path)
    pair = threading.Barrier(2, timeout=30)  # two holders must meet: proves they overlap
    lock = threading.Lock()
    busy: set[str] = set()
    ran: list[str] = []
    errors: list[BaseException] = []

    def job() -> None:
        try:
            with pool.slot(timeout=30) as slot:
                with lock:
                    assert slot.device not in busy, "two jobs on one GPU"
                    busy.add(slot.device)
                    ran.append(slot.device)
                pair.wait()
                with lock:
                    busy.discard(slot.device)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(ran) == ["0", "0", "0", "1", "1", "1"]


def _hold(lock_dir: str, marks: str, ready: Any, go: Any) -> None:
    """In a child process: take a slot, mark its device exclusively, wait, release."""
    pool = GpuPool(["0", "1"], Path(lock_dir))
    with pool.slot(timeout=30) as slot:
        mark = Path(marks) / slot.device
        mark.touch(exist_ok=False)  # fails if another process holds the same device
        ready.set()
        go.wait(30)
        mark.unlink()


@pytest.mark.slow
def test_processes_never_share_a_device_and_a_crash_frees_its_slot(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    marks = tmp_path / "marks"
    marks.mkdir()
    events = [(ctx.Event(), ctx.Event()) for _ in range(2)]
    holders = [
        ctx.Process(target=_hold, args=(str(tmp_path / "locks"), str(marks), r, g))
        for r, g in events
    ]
    for proc in holders:
        proc.start()
    for ready, _ in events:
        assert ready.wait(60)
    assert sorted(p.name for p in marks.iterdir()) == ["0", "1"]
    pool = GpuPool(["0", "1"], tmp_path / "locks")
    with pytest.raises(NoFreeGpu), pool.slot(timeout=0.1):
        pass
    victim = holders[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(30)
    with pool.slot(timeout=30) as slot:  # the dead holder's device comes back
        assert (marks / slot.device).exists()  # its mark was never cleaned: it died
    events[1][1].set()
    holders[1].join(30)
    assert holders[1].exitcode == 0
