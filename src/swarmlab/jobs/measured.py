"""Measured results: a result posted with `{job: id}` takes its numbers from that job.

The hub's results service calls `measured_fields` when a result names a job: the score and the
guardrail come from the job's summary.json (provenance `measured`), and a claim that disagrees
with them is refused with both numbers. Self-reported scores were the Fast Gemma challenge's
weak point; this links every measured result to the run that produced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

from swarmlab.challenge.spec import ChallengeSpec
from swarmlab.domain.jobs import JobPurpose, JobStatus
from swarmlab.jobs.errors import ClaimMismatch, JobNotMeasured, NotYours, UnknownRecord
from swarmlab.jobs.queue import JobQueue

CLAIM_RTOL = 1e-9


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(summary: dict[str, Any], field: str, job_id: str) -> float:
    value = summary.get(field)
    if not _is_number(value):
        raise JobNotMeasured(
            f"job {job_id}'s summary has no `{field}`",
            "post the result of a job that ran every stage (see its summary.json)",
        )
    return float(value)


@dataclass(frozen=True)
class Measured:
    """What a job measured for a result: the score and guardrail fields, every other required
    field its summary holds as a number, and its submission."""

    fields: dict[str, float]
    submission: str


def measured_fields(
    queue: JobQueue, spec: ChallengeSpec, job_id: str, author: str, claimed: dict[str, Any]
) -> Measured:
    """The numbers a job measured, for a result its owner posts.

    Raises UnknownRecord, NotYours (someone else's job), JobNotMeasured (not completed), or
    ClaimMismatch when ``claimed`` carries any number that differs from the job's summary.
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
    summary: dict[str, Any] = job["summary"]
    scoring = spec.scoring
    needed = [scoring.score_field, *([scoring.guardrail.field] if scoring.guardrail else [])]
    measured = {field: _number(summary, field, job_id) for field in needed}
    extra = [f for f in scoring.required_fields if f not in measured and _is_number(summary.get(f))]
    measured |= {field: float(summary[field]) for field in extra}
    _check_claims(job_id, claimed, summary)
    return Measured(measured, job["submission"])


def _check_claims(job_id: str, claimed: dict[str, Any], summary: dict[str, Any]) -> None:
    """Every number the claim shares with the job's summary must be the job's."""
    for field, value in summary.items():
        claim = claimed.get(field)
        if claim is None or not _is_number(value):
            continue
        if not _is_number(claim) or not math.isclose(claim, value, rel_tol=CLAIM_RTOL):
            raise ClaimMismatch(
                f"the result claims {field} = {claim} but job {job_id} measured {field} = {value:g}",
                f"leave {field} out (the hub fills it from the job) or claim exactly what it measured",
            )
