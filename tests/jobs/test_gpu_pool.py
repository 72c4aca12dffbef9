"""The GPU pool on CPU: a Celery worker with two fake devices, real Redis, real hub and harness.

What test_e2e's two-GPU test leaves out: the devices come from the worker's own
``CUDA_VISIBLE_DEVICES`` (``--gpus 2`` inside ``4,5``), and the process that matters, the
entry's server, is shown to run with its job's device alone, while the two jobs' run intervals
overlap. benchmarks/gpu_pool.py measures the same set-up on real GPUs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fixtures.bundles import bundle_bytes
from tests.fixtures.jobs import hub_process, reference_entry, wait_for, worker_process

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PRINT_DEVICE = """import os, sys
print("entry sees CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "unset"), flush=True)
os.execv(sys.executable, [sys.executable, "reference_serve.py"])
"""


@pytest.fixture
def queue_prefix(redis_url: str) -> Iterator[str]:
    """A Celery queue prefix of this test alone; its queues are deleted afterwards."""
    import redis

    prefix = f"swarmlab-pool-{uuid.uuid4().hex[:8]}."
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{prefix}*", f"_kombu.binding.{prefix}*"):
            for key in client.scan_iter(match=pattern):
                client.delete(key)
    finally:
        client.close()


def device_printing_entry(dest: Path, model_dir: Path) -> Path:
    """The reference entry behind a serve.py that first prints the device it was given."""
    entry = reference_entry(dest, model_dir)
    (entry / "serve.py").rename(entry / "reference_serve.py")
    (entry / "serve.py").write_text(PRINT_DEVICE, encoding="utf-8")
    return entry


def ended(url: str, job_ids: list[str]) -> list[dict[str, Any]] | None:
    jobs = [httpx.get(f"{url}/v1/jobs/{job_id}").json() for job_id in job_ids]
    return jobs if all(job["status"] in ("completed", "error") for job in jobs) else None


def test_two_jobs_overlap_each_server_pinned_to_its_own_device(
    tiny_pack: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    redis_url: str,
    queue_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = {"executor": "celery", "broker": redis_url, "queue_prefix": queue_prefix}
    with hub_process(tiny_pack, tmp_path / "hub", reap_every_s="0.5", **settings) as hub:
        entry = device_printing_entry(tmp_path / "entry", tiny_model_dir)
        with hub.client() as organizer:
            submission = organizer.post("/v1/submissions", content=bundle_bytes(entry)).json()
            body = {"submission_id": submission["id"], "profile": "ci"}
            job_ids = [organizer.post("/v1/jobs", json=body).json()["id"] for _ in range(2)]
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")  # the worker's view; --gpus 2 of it
        args = ("--broker", redis_url, "--queue-prefix", queue_prefix, "--gpus", "2")
        token = hub.worker_token("pool")
        with worker_process(hub, token, tmp_path / "worker", *args) as worker:
            jobs = wait_for(lambda: ended(hub.url, job_ids), "both jobs to end", alive=worker)
        assert [job["status"] for job in jobs] == ["completed", "completed"], jobs
        devices = [job["worker"].rsplit("/gpu", 1)[1] for job in jobs]
        assert sorted(devices) == ["4", "5"]
        for job, device in zip(jobs, devices, strict=True):
            log = httpx.get(f"{hub.url}/v1/jobs/{job['id']}/artifacts/server.log").text
            seen = {line.rsplit("=", 1)[1] for line in log.splitlines() if "entry sees" in line}
            assert seen == {device}, log[-2000:]
        starts = [datetime.fromisoformat(job["started_at"]) for job in jobs]
        ends = [datetime.fromisoformat(job["finished_at"]) for job in jobs]
        assert max(starts) < min(ends), "the two jobs ran one after the other"
