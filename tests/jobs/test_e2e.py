"""End to end on CPU: a real hub process, real worker processes, the real harness, the tiny model."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fixtures.bundles import bundle_bytes
from tests.fixtures.jobs import (
    HubProcess,
    diverging_entry,
    hub_process,
    reference_entry,
    swarmlab_command,
    wait_for,
    worker_process,
)

from swarmlab.jobs.leftovers import processes_inside

pytestmark = pytest.mark.slow


def submit_and_request(agent: httpx.Client, entry: Path, jobs: int = 1) -> list[str]:
    """Upload ``entry`` and queue ``jobs`` self-eval jobs of it; their ids."""
    uploaded = agent.post("/v1/submissions", content=bundle_bytes(entry))
    assert uploaded.status_code in (200, 201), uploaded.text
    body = {"submission_id": uploaded.json()["id"], "profile": "ci"}
    queued = [agent.post("/v1/jobs", json=body) for _ in range(jobs)]
    assert all(job.status_code == 202 for job in queued), [job.text for job in queued]
    return [str(job.json()["id"]) for job in queued]


def job_in(hub: HubProcess, job_id: str, *states: str) -> dict[str, Any] | None:
    job: dict[str, Any] = httpx.get(f"{hub.url}/v1/jobs/{job_id}").json()
    return job if job["status"] in states else None


def test_a_polling_worker_runs_a_job_to_a_summary(
    tiny_pack: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with hub_process(tiny_pack, tmp_path / "hub", executor="none", reap_every_s="0.5") as hub:
        with hub.agent("ada") as agent:
            entry = reference_entry(tmp_path / "entry", tiny_model_dir)
            [job_id] = submit_and_request(agent, entry)
        with worker_process(hub, hub.worker_token("box"), tmp_path / "worker") as worker:
            job = wait_for(
                lambda: job_in(hub, job_id, "completed", "error"), "the job to end", alive=worker
            )
        assert job["status"] == "completed", job["message"]
        assert job["summary"]["tps"] > 0
        assert "identity" not in job["summary"]  # the public set has no reference decode
        files = httpx.get(f"{hub.url}/v1/jobs/{job_id}/artifacts").json()["artifacts"]
        assert {"summary.json", "decode_outputs.jsonl", "status.json", "server.log"} <= set(files)
        summary = httpx.get(f"{hub.url}/v1/jobs/{job_id}/artifacts/summary.json").json()
        assert summary["tps"] == job["summary"]["tps"]
        log = httpx.get(f"{hub.url}/v1/jobs/{job_id}/logs", params={"follow": 1}).text
        assert "stage speed" in log
        assert log.rstrip().endswith("[hub] completed")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_killing_a_worker_mid_job_requeues_it_and_another_completes_it(
    tiny_pack: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The job is requeued and completed by the next worker, which also stops the entry server
    the dead worker left running (it lives in a session of its own)."""
    with hub_process(tiny_pack, tmp_path / "hub", executor="none", reap_every_s="0.5") as hub:
        with hub.agent("ada") as agent:
            entry = reference_entry(tmp_path / "entry", tiny_model_dir)
            [job_id] = submit_and_request(agent, entry)
        token = hub.worker_token("box")
        workdir = tmp_path / "worker"
        with worker_process(hub, token, workdir) as doomed:
            wait_for(
                lambda: (
                    job_in(hub, job_id, "running")
                    if (job_in(hub, job_id, "running") or {}).get("stage") in ("speed", "decode")
                    else None
                ),
                "the first worker to reach the speed stage",
                alive=doomed,
            )
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
        orphans = processes_inside((workdir / job_id).resolve())
        assert orphans, "the entry's server should outlive its worker"
        wait_for(lambda: job_in(hub, job_id, "queued"), "the reaper to requeue the job")
        with worker_process(hub, token, workdir) as second:
            job = wait_for(
                lambda: job_in(hub, job_id, "completed", "error"), "the job to end", alive=second
            )
        assert job["status"] == "completed", job["message"]
        assert job["attempts"] == 2
        log = httpx.get(f"{hub.url}/v1/jobs/{job_id}/logs", params={"follow": 1}).text
        assert "went silent; queued again" in log
        assert not any(_alive(pid) for pid in orphans)


@pytest.mark.redis
def test_the_celery_executor_runs_a_job_through_redis(
    tiny_pack: Path, tiny_model_dir: Path, tmp_path: Path, redis_url: str
) -> None:
    prefix = f"swarmlab-test-{uuid.uuid4().hex[:8]}."
    settings = {"executor": "celery", "broker": redis_url, "queue_prefix": prefix}
    with hub_process(tiny_pack, tmp_path / "hub", reap_every_s="0.5", **settings) as hub:
        with hub.agent("ada") as agent:
            [job_id] = submit_and_request(
                agent, reference_entry(tmp_path / "entry", tiny_model_dir)
            )
        token = hub.worker_token("celery-box")
        args = ("--broker", redis_url, "--queue-prefix", prefix)
        with worker_process(hub, token, tmp_path / "worker", *args) as worker:
            job = wait_for(
                lambda: job_in(hub, job_id, "completed", "error"), "the job to end", alive=worker
            )
        assert job["status"] == "completed", job["message"]
        assert job["worker"].startswith("worker-celery-box/")
        assert job["summary"]["tps"] > 0
    _forget_queue(redis_url, f"{prefix}cpu")


def _forget_queue(redis_url: str, queue: str) -> None:
    """Remove the test's queue and its binding from the shared Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")
    finally:
        client.close()


def test_submit_and_watch_run_a_job_on_the_inline_executor(
    tiny_pack: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with hub_process(tiny_pack, tmp_path / "hub", executor="inline", workers="1") as hub:
        with hub.agent("ada") as agent:
            token = agent.headers["Authorization"].removeprefix("Bearer ")
        entry = reference_entry(tmp_path / "entry", tiny_model_dir)
        env = {**os.environ, "SWARMLAB_URL": hub.url, "SWARMLAB_TOKEN": token}
        done = subprocess.run(
            swarmlab_command("submit", str(entry), "--profile", "ci", "--watch"),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "stage speed" in done.stdout
        assert "completed after" in done.stdout
        listed = subprocess.run(
            swarmlab_command("jobs", "list", "--agent", "ada"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "completed" in listed.stdout


@pytest.mark.redis
def test_a_celery_worker_with_two_gpus_runs_two_jobs_at_once_one_per_device(
    tiny_pack: Path, tiny_model_dir: Path, tmp_path: Path, redis_url: str
) -> None:
    """Issue 6 on CPU: fake devices 0 and 1; each job's worker label names its device."""
    prefix = f"swarmlab-test-{uuid.uuid4().hex[:8]}."
    settings = {"executor": "celery", "broker": redis_url, "queue_prefix": prefix}
    with hub_process(tiny_pack, tmp_path / "hub", reap_every_s="0.5", **settings) as hub:
        entry = reference_entry(tmp_path / "entry", tiny_model_dir)
        with hub.agent("ada") as agent:
            job_ids = submit_and_request(agent, entry, jobs=2)
        args = ("--broker", redis_url, "--queue-prefix", prefix, "--gpus", "2")
        with worker_process(hub, hub.worker_token("pair"), tmp_path / "worker", *args) as worker:
            wait_for(
                lambda: True if all(job_in(hub, j, "running") for j in job_ids) else None,
                "both jobs to run at the same time",
                alive=worker,
            )
            jobs = [
                wait_for(
                    lambda j=j: job_in(hub, j, "completed", "error"), "a job to end", alive=worker
                )
                for j in job_ids
            ]
        assert [job["status"] for job in jobs] == ["completed", "completed"], jobs
        assert sorted(job["worker"].rsplit("/", 1)[1] for job in jobs) == ["gpu0", "gpu1"]
    _forget_queue(redis_url, f"{prefix}cpu")


def _post_measured(agent: httpx.Client, job_id: str, **claims: Any) -> httpx.Response:
    body = {"job": job_id, "method": "greedy", "description": "the reference entry", **claims}
    return agent.post("/v1/results", json=body)


def _verdict(hub: HubProcess, result_id: str) -> dict[str, Any] | None:
    result: dict[str, Any] = httpx.get(f"{hub.url}/v1/results/{result_id}").json()
    return result if result["verification"] != "pending" else None


@pytest.fixture(params=["inline", pytest.param("celery", marks=pytest.mark.redis)])
def running_hub(
    request: pytest.FixtureRequest, tiny_pack: Path, tmp_path: Path
) -> Iterator[HubProcess]:
    """A hub whose jobs run inline, or on a Celery worker process over the real Redis."""
    if request.param == "inline":
        with hub_process(tiny_pack, tmp_path / "hub", executor="inline", workers="1") as hub:
            yield hub
        return
    redis_url = request.getfixturevalue("redis_url")
    prefix = f"swarmlab-test-{uuid.uuid4().hex[:8]}."
    settings = {"executor": "celery", "broker": redis_url, "queue_prefix": prefix}
    with hub_process(tiny_pack, tmp_path / "hub", **settings) as hub:
        args = ("--broker", redis_url, "--queue-prefix", prefix)
        with worker_process(hub, hub.worker_token("celery"), tmp_path / "worker", *args):
            yield hub
    _forget_queue(redis_url, f"{prefix}cpu")


def test_a_measured_result_is_verified_on_the_private_set(
    running_hub: HubProcess, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """submit -> job -> measured result (pending) -> re-run on the private set -> valid;
    a claim of twice the measured TPS is refused with both numbers. Inline and on Celery."""
    hub = running_hub
    with hub.agent("ada") as agent:
        [job_id] = submit_and_request(agent, reference_entry(tmp_path / "e", tiny_model_dir))
        job = wait_for(lambda: job_in(hub, job_id, "completed", "error"), "the job to end")
        assert job["status"] == "completed", job["message"]
        tps = job["summary"]["tps"]
        refused = _post_measured(agent, job_id, tps=2 * tps)
        assert refused.status_code == 422
        message = refused.json()["error"]["message"]
        assert f"{2 * tps}" in message and f"{tps:g}" in message
        posted = _post_measured(agent, job_id)
        assert posted.status_code == 201, posted.text
        result = posted.json()
    assert (result["provenance"], result["verification"]) == ("measured", "pending")
    assert (result["score"], result["tps"]) == (job["summary"]["ppl"], tps)
    judged = wait_for(lambda: _verdict(hub, result["id"]), "the verification verdict")
    assert judged["verification"] == "valid", judged["verdicts"]
    assert judged["verdicts"][-1]["by"] == "verifier"
    board = httpx.get(f"{hub.url}/v1/messages", params={"agent": "verifier"}).json()
    assert any("@ada" in m["body"] and result["id"] in m["body"] for m in board["items"])


def test_a_server_diverging_on_the_private_set_is_invalid_naming_the_divergence(
    tiny_pack: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with hub_process(tiny_pack, tmp_path / "hub", executor="inline", workers="1") as hub:
        with hub.agent("bob") as agent:
            entry = diverging_entry(tmp_path / "e", tiny_model_dir)
            [job_id] = submit_and_request(agent, entry)
            job = wait_for(lambda: job_in(hub, job_id, "completed", "error"), "the job to end")
            assert job["status"] == "completed", job["message"]
            posted = _post_measured(agent, job_id)
            assert posted.status_code == 201, posted.text
        judged = wait_for(lambda: _verdict(hub, posted.json()["id"]), "the verification verdict")
        assert judged["verification"] == "invalid"
        note = judged["verdicts"][-1]["note"]
        assert note.startswith("identity: greedy decode differs from the reference: prompt ")
        assert ", token " in note
