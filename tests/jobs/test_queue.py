"""The job queue on SQLite and PostgreSQL: quota in one transaction, leases, the reaper."""

from __future__ import annotations

import threading

import pytest
from tests.fixtures.jobs import ManualClock

from swarmlab.domain.jobs import JobStatus
from swarmlab.jobs.errors import JobStateConflict, LeaseLost, NotYours, QuotaExceeded, UnknownRecord
from swarmlab.jobs.queue import JobQueue


def request(queue: JobQueue, owner: str = "ada", role: str = "agent") -> str:
    view, _ = queue.request(owner, role, "sub-ada", "ci")
    return str(view["id"])


def claimed(queue: JobQueue) -> tuple[str, str]:
    claim = queue.claim("w1", flavor="h200")
    assert claim is not None
    return str(claim.job["id"]), claim.lease_id


def test_request_queues_and_counts_quota(job_queue: JobQueue) -> None:
    view, quota = job_queue.request("ada", "agent", "sub-ada", "ci")
    assert view["status"] == "queued"
    assert view["flavor"] == "h200"
    assert quota is not None and (quota.used, quota.remaining) == (1, 4)


def test_over_quota_is_refused_with_what_is_left(job_queue: JobQueue, clock: ManualClock) -> None:
    for _ in range(5):
        request(job_queue)
        clock.advance(3600)
    with pytest.raises(QuotaExceeded) as err:
        request(job_queue)
    assert err.value.quota.remaining == 0
    assert err.value.quota.retry_after_s == pytest.approx(19 * 3600)
    assert len(job_queue.list_jobs(owner="ada")) == 5


def test_window_rolls(job_queue: JobQueue, clock: ManualClock) -> None:
    for _ in range(5):
        request(job_queue)
    clock.advance(24 * 3600)
    request(job_queue)


def test_cancelled_before_start_is_refunded(job_queue: JobQueue) -> None:
    job_id = request(job_queue)
    job_queue.cancel(job_id, "ada", is_organizer=False)
    quota = job_queue.quota("ada", "agent")
    assert quota is not None and quota.used == 0


def test_organizers_are_not_limited(job_queue: JobQueue) -> None:
    for _ in range(7):
        request(job_queue, "org", "organizer")
    assert job_queue.quota("org", "organizer") is None


def test_someone_elses_submission_is_refused(job_queue: JobQueue) -> None:
    with pytest.raises(NotYours, match="belongs to ada"):
        job_queue.request("human-bo", "human", "sub-ada", "ci")


def test_unknown_submission_is_refused(job_queue: JobQueue) -> None:
    with pytest.raises(UnknownRecord, match="no submission sub-nope") as err:
        job_queue.request("ada", "agent", "sub-nope", "ci")
    assert "swarmlab submit" in err.value.hint


def test_twenty_concurrent_requests_against_quota_five_start_exactly_five(
    job_queue: JobQueue,
) -> None:
    outcomes: list[str] = []
    gate = threading.Barrier(20)

    def ask() -> None:
        gate.wait(timeout=30)
        try:
            request(job_queue)
            outcomes.append("queued")
        except QuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["queued"] * 5 + ["refused"] * 15
    assert len(job_queue.list_jobs(owner="ada")) == 5


def test_claim_heartbeat_finish(job_queue: JobQueue, clock: ManualClock) -> None:
    first = request(job_queue)
    job_id, lease = claimed(job_queue)
    assert job_id == first
    assert job_queue.claim("w2", flavor="h200") is None
    clock.advance(30)
    reply = job_queue.heartbeat(job_id, lease, stage="speed", progress=0.5, log="speed 1/8")
    assert reply["cancel"] is False
    clock.advance(50)  # 80 s after the claim, 50 s after the heartbeat: still leased
    assert job_queue.reap() == []
    job_queue.finish(job_id, lease, JobStatus.completed, summary={"tps": 12.5})
    job = job_queue.get(job_id)
    assert (job["status"], job["summary"], job["stage"]) == ("completed", {"tps": 12.5}, "speed")
    texts = [c["text"] for c in job_queue.logs(job_id)[0]]
    assert texts[0].startswith("[hub] attempt 1 of 3 on w1")
    assert "speed 1/8" in texts
    with pytest.raises(LeaseLost):
        job_queue.finish(job_id, lease, JobStatus.completed)


def test_claim_by_id_skips_jobs_no_longer_queued(job_queue: JobQueue) -> None:
    job_id = request(job_queue)
    job_queue.cancel(job_id, "ada", is_organizer=False)
    assert job_queue.claim("w1", job_id=job_id) is None


def test_silent_worker_loses_the_job_until_attempts_run_out(
    job_queue: JobQueue, clock: ManualClock
) -> None:
    job_id = request(job_queue)
    for attempt in (1, 2, 3):
        _, lease = claimed(job_queue)
        clock.advance(61)
        expected = JobStatus.queued if attempt < 3 else JobStatus.error
        assert job_queue.reap() == [(job_id, expected)]
        with pytest.raises(LeaseLost, match="no longer held"):
            job_queue.heartbeat(job_id, lease)
    job = job_queue.get(job_id)
    assert (job["attempts"], job["message"]) == (3, "worker went silent on all 3 attempts")


def test_requeue_hooks_fire_so_executors_redeliver(job_queue: JobQueue, clock: ManualClock) -> None:
    delivered: list[str] = []
    job_queue.hooks.queued.append(lambda job_id, flavor: delivered.append(job_id))
    job_id = request(job_queue)
    claimed(job_queue)
    clock.advance(61)
    job_queue.reap()
    assert delivered == [job_id, job_id]


def test_job_timeout_is_enforced(job_queue: JobQueue, clock: ManualClock) -> None:
    job_id = request(job_queue)
    _, lease = claimed(job_queue)
    for _ in range(40):  # keep the lease alive past the 1200 s timeout
        clock.advance(30)
        if job_queue.reap():
            break
        job_queue.heartbeat(job_id, lease)
    job = job_queue.get(job_id)
    assert job["status"] == "timed_out"
    assert "1200s" in job["message"]


def test_cancel_running_asks_the_worker(job_queue: JobQueue, clock: ManualClock) -> None:
    job_id = request(job_queue)
    _, lease = claimed(job_queue)
    job_queue.cancel(job_id, "ada", is_organizer=False)
    assert job_queue.heartbeat(job_id, lease)["cancel"] is True
    job_queue.finish(job_id, lease, JobStatus.cancelled, "stopped on request")
    assert job_queue.get(job_id)["status"] == "cancelled"
    with pytest.raises(JobStateConflict, match="already cancelled"):
        job_queue.cancel(job_id, "ada", is_organizer=False)


def test_cancel_with_a_dead_worker_ends_cancelled(job_queue: JobQueue, clock: ManualClock) -> None:
    job_id = request(job_queue)
    claimed(job_queue)
    job_queue.cancel(job_id, "org", is_organizer=True)
    clock.advance(61)
    assert job_queue.reap() == [(job_id, JobStatus.cancelled)]


def test_only_the_owner_or_an_organizer_cancels(job_queue: JobQueue) -> None:
    job_id = request(job_queue)
    with pytest.raises(NotYours):
        job_queue.cancel(job_id, "human-bo", is_organizer=False)


def test_artifacts_need_the_lease(job_queue: JobQueue) -> None:
    job_id = request(job_queue)
    _, lease = claimed(job_queue)
    job_queue.add_artifact(job_id, lease, "summary.json", "a" * 64, 10)
    assert job_queue.artifacts(job_id) == {"summary.json": {"sha256": "a" * 64, "size": 10}}
    with pytest.raises(LeaseLost):
        job_queue.add_artifact(job_id, "not-the-lease", "x", "b" * 64, 1)
