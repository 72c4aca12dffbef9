"""The verifier over a real database: which results are re-run, and the verdicts that follow."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fixtures.jobs import add_result

from swarmlab.challenge.spec import ChallengeSpec
from swarmlab.domain.jobs import JobStatus
from swarmlab.domain.verification import Check, Verdict, VerdictStatus
from swarmlab.jobs.queue import JobQueue
from swarmlab.jobs.verification import Verifier


class RecordingSink:
    """Keeps every verdict it is given, as the hub's results service would record them."""

    def __init__(self) -> None:
        self.verdicts: list[tuple[str, Verdict, dict[str, Any]]] = []

    def record(self, result_id: str, verdict: Verdict, numbers: dict[str, Any]) -> bool:
        self.verdicts.append((result_id, verdict, numbers))
        return True


def verifier(
    queue: JobQueue, spec: ChallengeSpec, **verification: Any
) -> tuple[Verifier, RecordingSink]:
    changed = spec.model_copy(
        update={"verification": spec.verification.model_copy(update=verification)}
    )
    queue.spec = changed
    sink = RecordingSink()
    return Verifier(queue.db, changed, queue, sink), sink


def run_check(
    queue: JobQueue, status: JobStatus, summary: dict[str, Any] | None, message: str = ""
) -> None:
    claim = queue.claim("verifier-box", flavor="h200")
    assert claim is not None
    queue.finish(claim.job["id"], claim.lease_id, status, message, summary)


def test_a_rerun_that_reproduces_the_claim_is_valid(
    job_queue: JobQueue, fast_gemma_spec: ChallengeSpec
) -> None:
    verify, sink = verifier(job_queue, fast_gemma_spec, rerun="all")
    result = add_result(job_queue.db, "ada", 100.0)
    job = verify.result_posted(result)
    assert job is not None
    assert (job["purpose"], job["prompt_set"], job["result"]) == ("verify", "private", result)
    run_check(job_queue, JobStatus.completed, {"tps": 97.0, "ppl": 2.3, "identity": "IDENTICAL"})
    [(judged, verdict, numbers)] = sink.verdicts
    assert (judged, verdict.status, numbers["rerun"]) == (result, VerdictStatus.valid, 97.0)


def test_a_diverging_rerun_is_invalid_and_names_the_divergence(
    job_queue: JobQueue, fast_gemma_spec: ChallengeSpec
) -> None:
    verify, sink = verifier(job_queue, fast_gemma_spec, rerun="all")
    verify.result_posted(add_result(job_queue.db, "ada", 100.0))
    summary = {
        "tps": 100.0,
        "ppl": 2.3,
        "identity": "DIVERGENT",
        "identity_first_divergence": "prompt maths-003, token 5",
    }
    run_check(job_queue, JobStatus.completed, summary)
    verdict = sink.verdicts[0][1]
    assert (verdict.status, verdict.failed) == (VerdictStatus.invalid, Check.identity)
    assert "prompt maths-003, token 5" in verdict.reason


def test_a_failed_rerun_is_invalid(job_queue: JobQueue, fast_gemma_spec: ChallengeSpec) -> None:
    verify, sink = verifier(job_queue, fast_gemma_spec, rerun="all")
    verify.result_posted(add_result(job_queue.db, "ada", 100.0))
    run_check(job_queue, JobStatus.error, None, "the server exited")
    assert sink.verdicts[0][1].failed is Check.rerun


def test_outside_the_top_k_a_measured_result_is_settled_without_a_rerun(
    job_queue: JobQueue, fast_gemma_spec: ChallengeSpec
) -> None:
    verify, sink = verifier(job_queue, fast_gemma_spec, rerun="top_k", top_k=2)
    for author, score in (("bob", 300.0), ("cy", 200.0)):
        add_result(job_queue.db, author, score, verification="valid")
    low = add_result(job_queue.db, "ada", 100.0)
    assert verify.result_posted(low) is None
    assert [(r, v.status) for r, v, _ in sink.verdicts] == [(low, VerdictStatus.valid)]
    high = add_result(job_queue.db, "ada", 250.0)
    assert verify.result_posted(high) is not None


def test_self_reported_results_outside_the_top_k_wait_for_organizers(
    job_queue: JobQueue, fast_gemma_spec: ChallengeSpec
) -> None:
    verify, sink = verifier(job_queue, fast_gemma_spec, rerun="top_k", top_k=1)
    add_result(job_queue.db, "bob", 300.0, verification="valid")
    assert (
        verify.result_posted(add_result(job_queue.db, "ada", 1.0, provenance="self-reported"))
        is None
    )
    assert sink.verdicts == []


def test_manual_mode_queues_nothing(job_queue: JobQueue, fast_gemma_spec: ChallengeSpec) -> None:
    verify, _ = verifier(job_queue, fast_gemma_spec, mode="manual", rerun="all")
    assert verify.result_posted(add_result(job_queue.db, "ada", 100.0)) is None
    assert job_queue.list_jobs() == []


@pytest.mark.parametrize(("ppl", "flagged"), [(2.0, False), (9.0, True)])
def test_degradation_check_rescores_the_top_k_guardrail(
    job_queue: JobQueue, fast_gemma_spec: ChallengeSpec, ppl: float, flagged: bool
) -> None:
    verify, sink = verifier(job_queue, fast_gemma_spec, degradation_top_k=1)
    best = add_result(job_queue.db, "ada", 300.0, verification="valid")
    add_result(job_queue.db, "bob", 100.0, verification="valid")
    jobs = verify.degradation_check()
    assert [(j["purpose"], j["result"]) for j in jobs] == [("degradation", best)]
    run_check(job_queue, JobStatus.completed, {"tps": 300.0, "ppl": ppl})
    assert [v.failed for _, v, _ in sink.verdicts] == ([Check.guardrail] if flagged else [])
