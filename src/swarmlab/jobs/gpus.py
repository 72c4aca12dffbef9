"""One job per GPU: hand out devices to concurrent jobs and pin each job's process to its own.

A worker started with ``--gpus 2`` (or ``--gpus 0,3``) runs up to that many jobs at once. Each
job holds one device slot for its whole run and starts its process with ``CUDA_VISIBLE_DEVICES``
set to that device alone, so two jobs never share a GPU and neither sees the other's.

Slots are exclusive ``flock`` locks on one file per device. That works the same between threads
(each holder opens its own file description) and between the processes of a Celery prefork
pool, and a process that dies mid-job releases its slot with its file descriptors, so a crash
never leaks a GPU.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

VISIBLE = "CUDA_VISIBLE_DEVICES"
_POLL_S = 0.05


class GpuSpecError(ValueError):
    """A ``--gpus`` value that names no usable devices."""


class NoFreeGpu(TimeoutError):
    """Every device stayed busy for the whole wait."""


def parse_gpus(spec: str, inherited: str | None = None) -> list[str]:
    """Devices a worker may use, from ``--gpus N`` or an explicit list ``--gpus 0,3``.

    A count takes the first N devices the worker itself can see: when the worker was started
    with ``CUDA_VISIBLE_DEVICES=4,5`` (``inherited``), ``--gpus 2`` means devices 4 and 5.
    """
    text = spec.strip()
    if text.isdigit() and "," not in text:
        count = int(text)
        if count < 1:
            raise GpuSpecError("--gpus takes a count of at least 1 or a list like 0,1")
        pool = [d.strip() for d in inherited.split(",") if d.strip()] if inherited else None
        if pool is None:
            return [str(i) for i in range(count)]
        if count > len(pool):
            raise GpuSpecError(
                f"--gpus {count} asks for more devices than {VISIBLE}={inherited} shows"
            )
        return pool[:count]
    devices = [d.strip() for d in text.split(",")]
    if not all(devices) or len(set(devices)) != len(devices):
        raise GpuSpecError(f"--gpus {spec!r}: give a count or distinct device ids like 0,1")
    return devices


def pinned_env(device: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a job's process: everything from ``base``, one visible device."""
    env = dict(os.environ if base is None else base)
    env[VISIBLE] = device
    return env


@dataclass(frozen=True)
class GpuSlot:
    """A device held by one job until the slot is released."""

    device: str
    index: int

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment pinning a process to this slot's device."""
        return pinned_env(self.device, base)


class GpuPool:
    """Exclusive device slots shared by every thread and process using the same ``lock_dir``."""

    def __init__(self, devices: Sequence[str], lock_dir: Path | None = None) -> None:
        if not devices:
            raise GpuSpecError("a GPU pool needs at least one device")
        self.devices = list(devices)
        self.lock_dir = lock_dir or Path(tempfile.gettempdir()) / "swarmlab-gpus"
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self._released = threading.Condition()

    def _lock_path(self, device: str) -> Path:
        return self.lock_dir / f"gpu-{device}.lock"

    def _try(self, index: int) -> int | None:
        fd = os.open(self._lock_path(self.devices[index]), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _try_any(self) -> tuple[GpuSlot, int] | None:
        for index, device in enumerate(self.devices):
            fd = self._try(index)
            if fd is not None:
                return GpuSlot(device=device, index=index), fd
        return None

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[GpuSlot]:
        """Hold a free device for the duration of the block; wait for one if all are busy.

        Raises NoFreeGpu after ``timeout`` seconds (``None`` waits for ever). Waiters in this
        process wake as soon as a slot here is released; slots released by other processes are
        noticed by polling.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        held = self._try_any()
        while held is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise NoFreeGpu(f"all {len(self.devices)} GPUs stayed busy for {timeout:g}s")
            with self._released:
                self._released.wait(_POLL_S if left is None else min(_POLL_S, left))
            held = self._try_any()
        slot, fd = held
        try:
            yield slot
        finally:
            os.close(fd)  # closing the descriptor drops the flock
            with self._released:
                self._released.notify()
