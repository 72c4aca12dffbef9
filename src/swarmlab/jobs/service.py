"""Starting a worker process from `swarmlab worker`'s options (Celery or polling)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from swarmlab.jobs.celery import queue_name, worker_app
from swarmlab.jobs.gpus import VISIBLE, GpuPool, parse_gpus
from swarmlab.jobs.leftovers import reap_leftovers
from swarmlab.jobs.runner import RunnerOptions
from swarmlab.jobs.worker import HubClient, RemoteWorker


@dataclass(frozen=True)
class WorkerConfig:
    """Everything `swarmlab worker` was told."""

    hub: str
    token: str
    flavor: str = "cpu"
    broker: str | None = None
    gpus: str | None = None
    queue_prefix: str = "swarmlab."
    workdir: Path = Path("./swarmlab-worker")
    install: bool = True

    def devices(self) -> list[str] | None:
        """The GPUs this worker may use, or None on a machine without them."""
        return None if self.gpus is None else parse_gpus(self.gpus, os.environ.get(VISIBLE))


def build_worker(config: WorkerConfig) -> RemoteWorker:
    """A worker over the config's hub, GPUs and work folder."""
    devices = config.devices()
    pool = GpuPool(devices, config.workdir / "gpu-locks") if devices else None
    options = RunnerOptions(workdir=config.workdir.resolve(), install=config.install)
    return RemoteWorker(HubClient(config.hub, config.token), options, pool, config.flavor)


def run_worker(config: WorkerConfig) -> int:
    """Serve jobs until interrupted (after cleaning up what dead workers left); exit status."""
    reap_leftovers(config.workdir)
    slots = len(config.devices() or [None])
    if config.broker:
        app = worker_app(config.broker, build_worker(config).run_delivered)
        app.worker_main(
            [
                "worker",
                "--queues",
                queue_name(config.queue_prefix, config.flavor),
                "--concurrency",
                str(slots),
                "--pool",
                "prefork",
                "--prefetch-multiplier",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ]
        )
        return 0
    if slots == 1:
        _poll(config)
        return 0
    children = [mp.get_context("spawn").Process(target=_poll, args=(config,)) for _ in range(slots)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    return 0


def _poll(config: WorkerConfig) -> None:
    """One polling process: take jobs until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        build_worker(config).poll(stop)
    except KeyboardInterrupt:
        stop.set()
