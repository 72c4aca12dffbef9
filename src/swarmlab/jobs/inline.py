"""The inline executor: worker threads inside `swarmlab serve`.

The default for a single machine. Threads claim queued jobs straight from the database and
report through the queue's functions (no HTTP), with the same runner remote workers use.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from swarmlab.challenge.packs import ChallengePack
from swarmlab.domain.jobs import JobStatus
from swarmlab.jobs.errors import LeaseLost
from swarmlab.jobs.inputs import job_inputs
from swarmlab.jobs.leftovers import reap_leftovers
from swarmlab.jobs.queue import Claim, JobQueue
from swarmlab.jobs.runner import JobWork, RunnerOptions, run_job
from swarmlab.storage.blobs import BlobStore

log = logging.getLogger("swarmlab.jobs")
CHUNK = 1 << 20


def file_chunks(path: Path) -> Iterator[bytes]:
    """A file's bytes in chunks, for streaming into the blob store."""
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


class LocalChannel:
    """A job channel for a worker living inside the hub: it calls the queue directly."""

    def __init__(self, queue: JobQueue, blobs: BlobStore, job_id: str, lease_id: str) -> None:
        self.queue = queue
        self.blobs = blobs
        self.job_id = job_id
        self.lease_id = lease_id

    def heartbeat(self, stage: str, progress: float | None, log: str) -> bool:
        reply = self.queue.heartbeat(
            self.job_id, self.lease_id, stage=stage, progress=progress, log=log
        )
        return bool(reply["cancel"])

    def upload(self, name: str, path: Path) -> None:
        sha256 = self.blobs.put_chunks(file_chunks(path))
        self.queue.add_artifact(self.job_id, self.lease_id, name, sha256, path.stat().st_size)

    def finish(self, status: str, message: str, summary: dict[str, Any] | None) -> None:
        self.queue.finish(self.job_id, self.lease_id, JobStatus(status), message, summary)


def work_for(claim: Claim, pack: ChallengePack, bundle: bytes) -> JobWork:
    """The runner's view of a claimed job, with inputs from the local challenge pack."""
    job = claim.job
    profiles = pack.spec.bench.profiles if pack.spec.bench else {}
    if job["profile"] not in profiles:
        raise LookupError(f"challenge {pack.spec.name} has no bench profile {job['profile']!r}")
    return JobWork(
        job_id=job["id"],
        bundle=bundle,
        inputs=job_inputs(pack, job["prompt_set"]),
        profile=profiles[job["profile"]],
        timeout_s=float(job["timeout_s"]),
        lease_s=float(job["lease_s"]),
    )


class InlineExecutor:
    """``workers`` threads running jobs of the challenge's flavour, one job each at a time."""

    def __init__(
        self,
        queue: JobQueue,
        pack: ChallengePack,
        blobs: BlobStore,
        options: RunnerOptions,
        workers: int = 1,
        idle_poll_s: float = 5.0,
    ) -> None:
        self.queue = queue
        self.pack = pack
        self.blobs = blobs
        self.options = options
        self.workers = workers
        self.idle_poll_s = idle_poll_s
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.name = f"inline@{socket.gethostname()}"

    def deliver(self, _job_id: str, _flavor: str) -> None:
        """A job was queued: wake an idle worker thread."""
        with self._wake:
            self._wake.notify()

    def start(self) -> None:
        """Start the worker threads, after cleaning up what a crashed hub left running."""
        reap_leftovers(self.options.workdir)
        for index in range(self.workers):
            self._spawn(f"job-worker-{index}", functools.partial(self._work, index))

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop taking jobs; running jobs are abandoned, and the reaper requeues them later."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join()

    def _work(self, index: int) -> None:
        while not self._stop.is_set():
            claim = self.queue.claim(f"{self.name}/{index}", flavor=self.pack.spec.jobs.flavor)
            if claim is None:
                with self._wake:
                    self._wake.wait(self.idle_poll_s)
                continue
            self.run(claim)

    def run(self, claim: Claim) -> None:
        """Run one claimed job; a failure to even start it is reported as the job's error."""
        channel = LocalChannel(self.queue, self.blobs, claim.job["id"], claim.lease_id)
        try:
            work = work_for(claim, self.pack, self.blobs.get(claim.submission_sha256))
            run_job(work, channel, self.options, abandon=self._stop)
        except Exception as exc:  # the thread must survive any one job
            log.exception("job %s failed before it ran", claim.job["id"])
            with contextlib.suppress(LeaseLost):
                channel.finish("error", f"the worker could not run it: {exc}", None)
