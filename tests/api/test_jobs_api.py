"""Submissions, jobs and the worker API over ASGI, on SQLite and PostgreSQL.

The executor is off (`none`) so the tests drive the worker API by hand, as a remote worker does.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from swarmlab.api.settings import HubSettings
from tests.fixtures.bundles import bundle_bytes, entry_dir
from tests.fixtures.hub import HubHarness, Member

pytestmark = pytest.mark.anyio


@pytest.fixture
def hub_settings(hub_settings: HubSettings) -> HubSettings:
    return hub_settings.model_copy(update={"executor": "none"})


@pytest.fixture
def challenge_overrides() -> dict[str, Any]:
    return {"limits": {"submission_bytes": 50_000}}


async def submit(hub: HubHarness, member: Member, data: bytes) -> Any:
    return await hub.client.post("/v1/submissions", content=data, headers=member.headers)


async def uploaded(hub: HubHarness, member: Member, tmp_path: Path) -> str:
    response = await submit(hub, member, bundle_bytes(entry_dir(tmp_path / member.handle)))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def worker(hub: HubHarness) -> Member:
    response = await hub.client.post(
        "/v1/workers", json={"name": "box"}, headers=hub.organizer.headers
    )
    assert response.status_code == 201, response.text
    return Member(response.json()["handle"], response.json()["token"])


async def test_upload_is_content_addressed_and_idempotent(hub: HubHarness, tmp_path: Path) -> None:
    ada = await hub.register("ada")
    data = bundle_bytes(entry_dir(tmp_path / "e"))
    first = await submit(hub, ada, data)
    assert first.status_code == 201
    body = first.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["owner"], body["manifest"]["serve"]) == ("ada", ["python", "serve.py"])
    again = await submit(hub, ada, data)
    assert (again.status_code, again.json()["id"]) == (200, body["id"])
    shown = await hub.client.get(f"/v1/submissions/{body['id']}")
    assert shown.json() == body
    own = await hub.client.get(f"/v1/submissions/{body['id']}/bundle", headers=ada.headers)
    assert own.content == data
    bob = await hub.register("bob")
    other = await hub.client.get(f"/v1/submissions/{body['id']}/bundle", headers=bob.headers)
    assert other.status_code == 403


async def test_broken_manifest_is_refused_with_the_harness_message(
    hub: HubHarness, tmp_path: Path
) -> None:
    ada = await hub.register("ada")
    folder = entry_dir(tmp_path / "e", manifest={"serve": ["python", "missing.py"]})
    response = await submit(hub, ada, bundle_bytes(folder))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_submission"
    assert "model_id: missing" in error["message"]
    assert "'missing.py' does not exist" in error["message"]


async def test_unsafe_bundle_is_refused(hub: HubHarness) -> None:
    ada = await hub.register("ada")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    response = await submit(hub, ada, raw.getvalue())
    assert response.status_code == 422
    assert "'..'" in response.json()["error"]["message"]


async def test_oversized_bundle_is_refused(hub: HubHarness) -> None:
    ada = await hub.register("ada")
    response = await submit(hub, ada, b"x" * 60_000)
    assert response.status_code == 413
    assert "at most 50000" in response.json()["error"]["message"]


async def test_job_quota_answers_429_with_retry_after(hub: HubHarness, tmp_path: Path) -> None:
    ada = await hub.register("ada")
    sub = await uploaded(hub, ada, tmp_path)
    for used in range(1, 6):
        response = await hub.client.post(
            "/v1/jobs", json={"submission_id": sub, "profile": "ci"}, headers=ada.headers
        )
        assert response.status_code == 202, response.text
        assert response.json()["quota"]["remaining"] == 5 - used
    refused = await hub.client.post("/v1/jobs", json={"submission_id": sub}, headers=ada.headers)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600
    assert "5 of 5" in refused.json()["error"]["message"]
    queue = await hub.client.get("/v1/jobs", params={"agent": "ada", "status": "queued"})
    assert queue.json()["count"] == 5


async def test_unknown_profile_is_refused(hub: HubHarness, tmp_path: Path) -> None:
    ada = await hub.register("ada")
    sub = await uploaded(hub, ada, tmp_path)
    response = await hub.client.post(
        "/v1/jobs", json={"submission_id": sub, "profile": "nope"}, headers=ada.headers
    )
    assert response.status_code == 404
    assert "ci" in response.json()["error"]["hint"]


async def test_worker_runs_a_job_through_the_api(hub: HubHarness, tmp_path: Path) -> None:
    ada = await hub.register("ada")
    sub = await uploaded(hub, ada, tmp_path)
    job = (
        await hub.client.post(
            "/v1/jobs", json={"submission_id": sub, "profile": "ci"}, headers=ada.headers
        )
    ).json()
    box = await worker(hub)
    claim = await hub.client.post(
        "/v1/worker/claim", json={"worker": "slot0", "flavor": "h200"}, headers=box.headers
    )
    assert claim.status_code == 200, claim.text
    lease = claim.json()["lease"]
    assert claim.json()["job"]["id"] == job["id"]
    assert claim.json()["profile"]["num_prompts"] == 16
    empty = await hub.client.post(
        "/v1/worker/claim", json={"worker": "slot1", "flavor": "h200"}, headers=box.headers
    )
    assert empty.status_code == 204
    base = f"/v1/worker/jobs/{job['id']}"
    bundle = await hub.client.get(f"{base}/bundle", params={"lease": lease}, headers=box.headers)
    assert hashlib.sha256(bundle.content).hexdigest() == claim.json()["submission_sha256"]
    beat = await hub.client.post(
        f"{base}/heartbeat",
        json={"lease": lease, "stage": "speed", "progress": 0.25, "log": "speed 4/16"},
        headers=box.headers,
    )
    assert beat.json()["cancel"] is False
    put = await hub.client.put(
        f"{base}/artifacts/summary.json",
        params={"lease": lease},
        content=b'{"tps": 42.0}',
        headers=box.headers,
    )
    assert put.status_code == 201
    done = await hub.client.post(
        f"{base}/finish",
        json={"lease": lease, "status": "completed", "summary": {"tps": 42.0}},
        headers=box.headers,
    )
    assert done.json()["status"] == "completed"
    shown = (await hub.client.get(f"/v1/jobs/{job['id']}")).json()
    assert (shown["status"], shown["worker"], shown["summary"]) == (
        "completed",
        "worker-box/slot0",
        {"tps": 42.0},
    )
    files = (await hub.client.get(f"/v1/jobs/{job['id']}/artifacts")).json()["artifacts"]
    assert set(files) == {"summary.json"}
    got = await hub.client.get(f"/v1/jobs/{job['id']}/artifacts/summary.json")
    assert got.json() == {"tps": 42.0}
    logs = (await hub.client.get(f"/v1/jobs/{job['id']}/logs")).json()
    assert "speed 4/16" in [item["text"] for item in logs["items"]]
    followed = await hub.client.get(f"/v1/jobs/{job['id']}/logs", params={"follow": 1})
    assert followed.text.endswith("[hub] completed\n")
    late = await hub.client.post(f"{base}/heartbeat", json={"lease": lease}, headers=box.headers)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "lease_lost")


async def test_worker_routes_need_a_worker_token(hub: HubHarness) -> None:
    ada = await hub.register("ada")
    response = await hub.client.post(
        "/v1/worker/claim", json={"worker": "x", "flavor": "h200"}, headers=ada.headers
    )
    assert response.status_code == 403


async def test_cancel_a_queued_job(hub: HubHarness, tmp_path: Path) -> None:
    ada = await hub.register("ada")
    sub = await uploaded(hub, ada, tmp_path)
    job = (
        await hub.client.post("/v1/jobs", json={"submission_id": sub}, headers=ada.headers)
    ).json()
    bob = await hub.register("bob")
    denied = await hub.client.post(f"/v1/jobs/{job['id']}/cancel", headers=bob.headers)
    assert denied.status_code == 403
    response = await hub.client.post(f"/v1/jobs/{job['id']}/cancel", headers=ada.headers)
    assert response.json()["status"] == "cancelled"
    again = await hub.client.post(f"/v1/jobs/{job['id']}/cancel", headers=ada.headers)
    assert again.status_code == 409


async def test_unknown_job_is_404(hub: HubHarness) -> None:
    response = await hub.client.get("/v1/jobs/job-nope")
    assert response.status_code == 404
    assert response.json()["error"]["hint"]


async def finished_job(hub: HubHarness, member: Member, tmp_path: Path, summary: Any) -> str:
    """A self-eval job of ``member`` completed by a worker with ``summary``."""
    sub = await uploaded(hub, member, tmp_path)
    job = (
        await hub.client.post("/v1/jobs", json={"submission_id": sub}, headers=member.headers)
    ).json()
    box = await worker(hub)
    claim = (
        await hub.client.post(
            "/v1/worker/claim", json={"worker": "w", "job": job["id"]}, headers=box.headers
        )
    ).json()
    body = {"lease": claim["lease"], "status": "completed", "summary": summary}
    await hub.client.post(f"/v1/worker/jobs/{job['id']}/finish", json=body, headers=box.headers)
    return str(job["id"])


async def test_a_result_naming_its_job_is_measured_and_queued_for_verification(
    hub: HubHarness, tmp_path: Path
) -> None:
    ada = await hub.register("ada")
    job_id = await finished_job(hub, ada, tmp_path, {"tps": 42.0, "ppl": 2.0})
    claim = {"job": job_id, "method": "greedy", "description": "baseline"}
    overclaim = await hub.client.post(
        "/v1/results", json={**claim, "tps": 84.0}, headers=ada.headers
    )
    assert overclaim.status_code == 422
    error = overclaim.json()["error"]
    assert error["code"] == "claim_mismatch"
    assert "tps = 84.0" in error["message"] and "tps = 42" in error["message"]
    posted = await hub.client.post("/v1/results", json=claim, headers=ada.headers)
    assert posted.status_code == 201, posted.text
    result = posted.json()
    assert (result["score"], result["guard"], result["provenance"]) == (42.0, 2.0, "measured")
    assert result["verification"] == "pending"
    checks = (await hub.client.get("/v1/jobs", params={"status": "queued"})).json()["items"]
    assert [(j["purpose"], j["result"], j["prompt_set"]) for j in checks] == [
        ("verify", result["id"], "private")
    ]


async def test_only_your_own_completed_job_measures_a_result(
    hub: HubHarness, tmp_path: Path
) -> None:
    ada = await hub.register("ada")
    bob = await hub.register("bob")
    job_id = await finished_job(hub, ada, tmp_path, {"tps": 42.0, "ppl": 2.0})
    claim = {"job": job_id, "method": "m", "description": "d"}
    stolen = await hub.client.post("/v1/results", json=claim, headers=bob.headers)
    assert stolen.status_code == 403
    sub = (await hub.client.get(f"/v1/jobs/{job_id}")).json()["submission"]
    queued = (
        await hub.client.post("/v1/jobs", json={"submission_id": sub}, headers=ada.headers)
    ).json()
    early = await hub.client.post(
        "/v1/results", json={**claim, "job": queued["id"]}, headers=ada.headers
    )
    assert (early.status_code, early.json()["error"]["code"]) == (409, "job_not_measured")


async def test_twenty_concurrent_job_requests_against_a_quota_of_five_queue_five(
    hub: HubHarness, tmp_path: Path
) -> None:
    ada = await hub.register("ada")
    sub = await uploaded(hub, ada, tmp_path)
    answers = await asyncio.gather(
        *(
            hub.client.post("/v1/jobs", json={"submission_id": sub}, headers=ada.headers)
            for _ in range(20)
        )
    )
    assert sorted(a.status_code for a in answers) == [202] * 5 + [429] * 15
    queue = (await hub.client.get("/v1/jobs", params={"agent": "ada"})).json()
    assert queue["count"] == 5
