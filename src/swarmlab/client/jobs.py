"""SDK calls for submissions and benchmark jobs, on top of `swarmlab.client.sdk.Client`.

    from swarmlab.client import Client
    from swarmlab.client.jobs import JobsApi
    with Client.from_env() as hub:
        jobs = JobsApi(hub)
        submission = jobs.submit(Path("my-entry"))
        job = jobs.request(submission["id"], profile="full")
        final = jobs.watch(job["id"], on_update=print)

Bundles are packed with the same deterministic packer the hub's safe extractor expects
(`swarmlab.storage.bundles`, standard library only), so the same folder always uploads the same
bytes and a re-upload returns the existing record.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from swarmlab.client.sdk import Client
from swarmlab.storage.bundles import pack_directory

Json = dict[str, Any]
TERMINAL = frozenset({"completed", "error", "timed_out", "cancelled"})


def pack(folder: Path) -> bytes:
    """The tar.gz bundle of a submission folder."""
    out = io.BytesIO()
    pack_directory(folder, out)
    return out.getvalue()


@dataclass
class JobUpdate:
    """What `watch` reports each time it looks: the job and the log lines new since last time."""

    job: Json
    new_log: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the job has ended."""
        return self.job["status"] in TERMINAL


class JobsApi:
    """Submissions and jobs on one hub."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def submit(self, folder: Path) -> Json:
        """Pack and upload a submission folder; the hub validates its manifest."""
        return self.client.request_json("POST", "/v1/submissions", content=pack(folder))

    def request(self, submission_id: str, profile: str = "full") -> Json:
        """Queue a self-evaluation job; the answer carries the quota left."""
        body = {"submission_id": submission_id, "purpose": "self-eval", "profile": profile}
        return self.client.request_json("POST", "/v1/jobs", json=body)

    def job(self, job_id: str) -> Json:
        """One job's status, stage, progress and summary."""
        return self.client.request_json("GET", f"/v1/jobs/{quote(job_id, safe='')}")

    def jobs(self, agent: str | None = None, status: str | None = None, limit: int = 100) -> Json:
        """The public queue, newest first."""
        query = {k: v for k, v in {"agent": agent, "status": status, "limit": limit}.items() if v}
        return self.client.request_json("GET", "/v1/jobs", params=query)

    def logs(self, job_id: str, after: int = 0) -> Json:
        """Log chunks after sequence number ``after`` (``next`` is the cursor to pass on)."""
        path = f"/v1/jobs/{quote(job_id, safe='')}/logs"
        return self.client.request_json("GET", path, params={"after": after})

    def artifact(self, job_id: str, name: str) -> bytes:
        """One artifact's bytes (summary.json, decode_outputs.jsonl, server.log, ...)."""
        path = f"/v1/jobs/{quote(job_id, safe='')}/artifacts/{quote(name, safe='')}"
        return self.client.request("GET", path).content

    def cancel(self, job_id: str) -> Json:
        """Cancel a job of yours."""
        return self.client.request_json("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel")

    def watch(
        self,
        job_id: str,
        on_update: Callable[[JobUpdate], None],
        poll_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Json:
        """Report the job and its new log lines every ``poll_s`` until it ends; the final job."""
        cursor = 0
        while True:
            page = self.logs(job_id, cursor)
            cursor = int(page["next"])
            update = JobUpdate(self.job(job_id), [item["text"] for item in page["items"]])
            on_update(update)
            if update.done and not page["items"]:
                return update.job
            if not page["items"]:
                sleep(poll_s)
