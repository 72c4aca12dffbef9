"""Measured results: a result posted with `{job: id}` takes its numbers from that job.

The hub's results service calls `measured_fields` when a result names a job: the score and the
guardrail come from the job's summary.json (provenance `measured`), and a claim that disagrees
with them is refused with both numbers. Self-reported scores were the Fast Gemma challenge's
weak point; this links every measured result to the run that produced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from swarmlab.challenge.spec import ChallengeSpec
from swarmlab.domain.jobs import JobPurpose, JobStatus
from swarmlab.jobs.errors import ClaimMismatch, JobNotMeasured, NotYours, UnknownRecord
from swarmlab.jobs.queue import JobQueue

CLAIM_RTOL = 1e-9


def _number(summary: dict[str, Any], field: str, job_id: str) -> float:
    value = summary.get(field)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise JobNotMeasured(
            f"job {job_id}'s summary has no `{field}`",
            "post the result of a job that ran every stage (see its summary.json)",
        )
    return float(value)


@dataclass(frozen=True)
class Measured:
    """What a job measured for a result: the score and guardrail fields, and its submission."""

    fields: dict[str, float]
    submission: str


def measured_fields(
    queue: JobQueue, spec: ChallengeSpec, job_id: str, author: str, claimed: dict[str, Any]
) -> Measured:
    """The score and guardrail a job measured, for a result its owner posts.

    Raises UnknownRecord, NotYours (someone else's job), JobNotMeasured (not completed), or
    ClaimMismatch when ``claimed`` carries a score or guardrail different from the job's.
    """
    try:
        job = queue.get(job_id)
    except UnknownRecord as exc:
        raise UnknownRecord(exc.message, "give the id of a completed job of yours") from exc
    if job["owner"] != author or job["purpose"] != JobPurpose.self_eval:
        raise NotYours(
            f"job {job_id} is not a self-evaluation of {author}",
            "post results from your own jobs (GET /v1/jobs?agent=<you>)",
        )
    if job["status"] != JobStatus.completed or not job["summary"]:
        raise JobNotMeasured(
            f"job {job_id} is {job['status']}, not completed",
            "wait for it to complete (swarmlab jobs watch ID), then post its result",
        )
    fields = [spec.scoring.score_field]
    if spec.scoring.guardrail is not None:
        fields.append(spec.scoring.guardrail.field)
    measured = {field: _number(job["summary"], field, job_id) for field in fields}
    _check_claims(job_id, claimed, measured)
    return Measured(measured, job["submission"])


def _check_claims(job_id: str, claimed: dict[str, Any], measured: dict[str, float]) -> None:
    for field, value in measured.items():
        claim = claimed.get(field)
        if claim is None:
            continue
        if not isinstance(claim, int | float) or not math.isclose(claim, value, rel_tol=CLAIM_RTOL):
            raise ClaimMismatch(
                f"the result claims {field} = {claim} but job {job_id} measured {field} = {value:g}",
                f"leave {field} out (the hub fills it from the job) or claim exactly what it measured",
            )
