"""Wiring the jobs area into a hub app: the queue, the executor, the reaper, the routers, and
the one mapping from job refusals to the API's error envelope.

`create_app` calls `install_jobs(app)` once; the executor and the reaper start and stop with
the app's lifespan, so an in-process test hub runs jobs exactly as `swarmlab serve` does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from swarmlab.api.errors import error_response
from swarmlab.api.hub import Hub
from swarmlab.jobs import errors as job_errors
from swarmlab.jobs.queue import JobQueue
from swarmlab.jobs.rulings import Rulings
from swarmlab.jobs.verification import Verifier

log = logging.getLogger("swarmlab.jobs")
Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[Any]]

_STATUS: dict[type[job_errors.JobsError], tuple[int, str]] = {
    job_errors.UnknownRecord: (404, "not_found"),
    job_errors.NotYours: (403, "forbidden"),
    job_errors.SubmissionRejected: (422, "invalid_submission"),
    job_errors.SubmissionTooLarge: (413, "too_large"),
    job_errors.QuotaExceeded: (429, "quota_exceeded"),
    job_errors.JobStateConflict: (409, "conflict"),
    job_errors.LeaseLost: (409, "lease_lost"),
    job_errors.JobNotMeasured: (409, "job_not_measured"),
    job_errors.ClaimMismatch: (422, "claim_mismatch"),
}


async def _jobs_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, job_errors.JobsError)
    status, code = _STATUS.get(type(exc), (400, "bad_request"))
    headers = {}
    if isinstance(exc, job_errors.QuotaExceeded) and exc.quota.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(exc.quota.retry_after_s)))
    return error_response(status, code, exc.message, exc.hint, headers)


class Executor(Protocol):
    """Runs queued jobs somewhere: threads in this process, or Celery workers."""

    def deliver(self, job_id: str, flavor: str) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Periodic:
    """A daemon thread calling ``action`` every ``every_s`` seconds until stopped: the reaper
    (timeouts and lost leases) and the scheduled degradation check."""

    def __init__(self, name: str, every_s: float, action: Callable[[], object]) -> None:
        self.every_s = every_s
        self.action = action
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.action()
            except Exception:  # a database hiccup must not stop the loop
                log.exception("%s failed; retrying in %ss", self._thread.name, self.every_s)


@dataclass
class JobsRuntime:
    """The jobs area of one hub: its queue, the executor that runs jobs, and the reaper."""

    queue: JobQueue
    executor: Executor | None
    verifier: Verifier
    rulings: Rulings
    loops: list[Periodic]

    def start(self) -> None:
        if self.executor is not None:
            self.queue.hooks.queued.append(self.executor.deliver)
            self.executor.start()
            for job_id, flavor in self.queue.queued_ids():
                self.executor.deliver(job_id, flavor)  # jobs queued while the hub was down
        for loop in self.loops:
            loop.start()

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        if self.executor is not None:
            self.executor.stop()


def make_executor(hub: Hub, queue: JobQueue) -> Executor | None:
    """The executor the settings ask for (``none``: jobs wait for remote pull workers)."""
    settings = hub.settings
    if settings.executor == "inline":
        from swarmlab.jobs.inline import InlineExecutor
        from swarmlab.jobs.runner import RunnerOptions

        options = RunnerOptions(workdir=Path(settings.data_dir) / "jobs")
        return InlineExecutor(queue, hub.pack, hub.blobs, options, workers=settings.workers)
    if settings.executor == "celery":
        from swarmlab.jobs.celery import CeleryDispatcher

        return CeleryDispatcher(settings.broker, settings.queue_prefix)
    return None


def _with_jobs(inner: Lifespan, runtime: JobsRuntime) -> Lifespan:
    """The app's lifespan with the jobs runtime started inside it and stopped before it ends."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            runtime.start()
            try:
                yield
            finally:
                runtime.stop()

    return lifespan


def build_runtime(hub: Hub) -> JobsRuntime:
    """The queue, executor, verifier, rulings and periodic loops of one hub."""
    from swarmlab.api.jobs_hooks import HubRulingEffects, HubVerdicts

    queue = JobQueue(hub.db, hub.spec)
    verifier = Verifier(hub.db, hub.spec, queue, HubVerdicts(hub))
    every_h = hub.spec.verification.degradation_every_hours
    loops = [Periodic("job-reaper", hub.settings.reap_every_s, queue.reap)]
    if hub.spec.verification.mode == "auto" and hub.spec.verification.degradation_top_k:
        loops.append(Periodic("degradation-check", every_h * 3600, verifier.degradation_check))
    rulings = Rulings(hub.db, HubRulingEffects(hub))
    return JobsRuntime(queue, make_executor(hub, queue), verifier, rulings, loops)


def install_jobs(app: FastAPI) -> None:
    """Mount the submissions, jobs, worker and rulings APIs; run jobs during the lifespan."""
    from swarmlab.api.routers import jobs, rulings, submissions, worker

    runtime = build_runtime(app.state.hub)
    app.state.jobs = runtime
    app.add_exception_handler(job_errors.JobsError, _jobs_error)
    for module in (submissions, jobs, worker, rulings):
        app.include_router(module.router)
    app.router.lifespan_context = _with_jobs(app.router.lifespan_context, runtime)


def get_jobs(request: Request) -> JobsRuntime:
    """FastAPI dependency: the jobs runtime of the hub serving this request."""
    runtime: JobsRuntime = request.app.state.jobs
    return runtime


JobsDep = Annotated[JobsRuntime, Depends(get_jobs)]
