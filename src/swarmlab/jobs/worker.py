"""Remote workers: run hub jobs on another machine, talking to the hub only over HTTP.

A worker holds a `worker` token. For each job it takes a GPU slot, pins itself to that device
(`CUDA_VISIBLE_DEVICES`, inherited by the entry's server), claims the job under a lease,
downloads the bundle and the organizer's inputs, runs the harness through the shared runner
and reports back through the worker API. Jobs arrive from Celery (`run_delivered`) or, without
a broker, by polling the hub's queue (`poll`).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from swarmlab.challenge.spec import BenchProfile
from swarmlab.jobs.errors import LeaseLost
from swarmlab.jobs.gpus import VISIBLE, GpuPool
from swarmlab.jobs.runner import JobInputs, JobWork, RunnerOptions, run_job

HTTP_TIMEOUT_S = 60.0


class HubUnavailable(ConnectionError):
    """The hub did not answer, or answered with an error the worker cannot act on."""


class HubClient:
    """The worker API over httpx, with the worker's token."""

    def __init__(self, hub_url: str, token: str) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.token = token
        self._http: httpx.Client | None = None
        self._pid = 0

    @property
    def http(self) -> httpx.Client:
        """A connection pool of this process: a Celery prefork child must not share its parent's."""
        if self._http is None or self._pid != os.getpid():
            self._http = httpx.Client(
                base_url=self.hub_url,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=HTTP_TIMEOUT_S,
            )
            self._pid = os.getpid()
        return self._http

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One worker API call; 409 (the lease is gone) raises LeaseLost."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise HubUnavailable(f"the hub at {self.http.base_url} did not answer: {exc}") from exc
        if response.status_code == 409:
            error = response.json().get("error", {})
            raise LeaseLost(error.get("message", "lease lost"), error.get("hint", ""))
        if response.status_code >= 400:
            raise HubUnavailable(
                f"{method} {path} -> {response.status_code}: {response.text[:500]}"
            )
        return response

    def claim(
        self, worker: str, *, job: str | None = None, flavor: str | None = None
    ) -> dict[str, Any] | None:
        body = {"worker": worker, "job": job, "flavor": flavor}
        response = self.call("POST", "/v1/worker/claim", json=body)
        return None if response.status_code == 204 else dict(response.json())

    def download(self, path: str, lease: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.call("GET", path, params={"lease": lease}).content)
        return dest

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


@dataclass
class HttpChannel:
    """A job channel over the worker API."""

    client: HubClient
    job_id: str
    lease: str

    def _path(self, action: str) -> str:
        return f"/v1/worker/jobs/{self.job_id}/{action}"

    def heartbeat(self, stage: str, progress: float | None, log: str) -> bool:
        body = {"lease": self.lease, "stage": stage, "progress": progress, "log": log}
        return bool(self.client.call("POST", self._path("heartbeat"), json=body).json()["cancel"])

    def upload(self, name: str, path: Path) -> None:
        with path.open("rb") as data:
            self.client.call(
                "PUT", self._path(f"artifacts/{name}"), params={"lease": self.lease}, content=data
            )

    def finish(self, status: str, message: str, summary: dict[str, Any] | None) -> None:
        body = {"lease": self.lease, "status": status, "message": message, "summary": summary}
        self.client.call("POST", self._path("finish"), json=body)


class RemoteWorker:
    """Runs jobs for one hub, one per GPU slot."""

    def __init__(
        self,
        client: HubClient,
        options: RunnerOptions,
        pool: GpuPool | None = None,
        flavor: str = "cpu",
    ) -> None:
        self.client = client
        self.options = options
        self.pool = pool
        self.flavor = flavor
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def run_delivered(self, job_id: str) -> str | None:
        """Run a job a broker delivered; a job no longer queued is skipped (None)."""
        return self._in_slot(lambda label: self.client.claim(label, job=job_id))

    def poll(self, stop: threading.Event, idle_s: float = 2.0) -> None:
        """Take jobs of this worker's flavour from the hub's queue until ``stop`` is set."""
        while not stop.is_set():
            if self._in_slot(lambda label: self.client.claim(label, flavor=self.flavor)) is None:
                stop.wait(idle_s)

    def _in_slot(self, take: Callable[[str], dict[str, Any] | None]) -> str | None:
        """Hold a GPU slot (if any) while claiming and running; the claim names the device."""
        if self.pool is None:
            return self._run(take(self.name))
        with self.pool.slot() as slot:
            os.environ[VISIBLE] = slot.device  # the entry's server inherits it
            return self._run(take(f"{self.name}/gpu{slot.device}"))

    def _run(self, claim: dict[str, Any] | None) -> str | None:
        if claim is None:
            return None
        job, lease = claim["job"], claim["lease"]
        channel = HttpChannel(self.client, job["id"], lease)
        base = self.options.workdir / "inputs" / job["id"]
        try:
            work = self._work(claim, base)
            return run_job(work, channel, self.options)
        except LeaseLost:
            return None
        finally:
            shutil.rmtree(base, ignore_errors=True)

    def _work(self, claim: dict[str, Any], base: Path) -> JobWork:
        job, lease = claim["job"], claim["lease"]
        prefix = f"/v1/worker/jobs/{job['id']}"
        files = {
            kind: self.client.download(f"{prefix}/inputs/{kind}", lease, base / f"{kind}.jsonl")
            for kind in claim["inputs"]
        }
        bundle = self.client.download(f"{prefix}/bundle", lease, base / "bundle.tar.gz")
        return JobWork(
            job_id=job["id"],
            bundle=bundle.read_bytes(),
            inputs=JobInputs(**files),
            profile=BenchProfile.model_validate(claim["profile"]),
            timeout_s=float(job["timeout_s"]),
            lease_s=float(job["lease_s"]),
        )
