"""Exploit reports and rulings over a real database; the hub's side effects are recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.fixtures.jobs import add_result

from swarmlab.db import Database
from swarmlab.jobs.errors import UnknownRecord
from swarmlab.jobs.queue import JobQueue
from swarmlab.jobs.rulings import RulingRequest, Rulings

WHEN = datetime(2026, 6, 2, tzinfo=UTC)


class RecordingEffects:
    def __init__(self) -> None:
        self.broadcasts: list[str] = []
        self.invalidated: list[tuple[str, str]] = []

    def broadcast(self, ruling: dict[str, Any]) -> None:
        self.broadcasts.append(ruling["id"])

    def invalidate(self, result_id: str, ruling: dict[str, Any]) -> None:
        self.invalidated.append((result_id, ruling["id"]))


@pytest.fixture
def rulings(job_queue: JobQueue) -> tuple[Rulings, RecordingEffects, Database]:
    effects = RecordingEffects()
    return Rulings(job_queue.db, effects), effects, job_queue.db


def request(affects: list[str], reports: list[str]) -> RulingRequest:
    return RulingRequest(
        "No teacher forcing", "PPL must be measured on free decoding.", WHEN, affects, reports
    )


def test_reports_are_private_until_a_ruling_settles_them(
    rulings: tuple[Rulings, RecordingEffects, Database],
) -> None:
    service, _, _ = rulings
    filed = service.report("ada", "PPL is blind to decode", "details", [])
    assert filed["id"] == "report-1"
    assert [r["id"] for r in service.reports("org", is_organizer=True)] == ["report-1"]
    assert [r["id"] for r in service.reports("ada", is_organizer=False)] == ["report-1"]
    assert service.reports("bob", is_organizer=False) == []
    assert service.reports(None, is_organizer=False) == []
    service.publish("org", request([], ["report-1"]))
    assert [r["ruling"] for r in service.reports(None, is_organizer=False)] == ["ruling-1"]


def test_a_ruling_broadcasts_and_invalidates_what_it_names(
    rulings: tuple[Rulings, RecordingEffects, Database],
) -> None:
    service, effects, db = rulings
    result = add_result(db, "ada", 500.0, verification="valid")
    ruling = service.publish("org", request([result], []))
    assert (ruling["id"], ruling["by"], ruling["affects"]) == ("ruling-1", "org", [result])
    assert effects.broadcasts == ["ruling-1"]
    assert effects.invalidated == [(result, "ruling-1")]
    assert [r["title"] for r in service.rulings()] == ["No teacher forcing"]
    assert "**ruling-1: No teacher forcing** (effective 2026-06-02)" in service.rules_section()


def test_a_ruling_naming_unknown_records_is_refused_whole(
    rulings: tuple[Rulings, RecordingEffects, Database],
) -> None:
    service, effects, _ = rulings
    with pytest.raises(UnknownRecord, match="no result nope"):
        service.publish("org", request(["nope"], []))
    with pytest.raises(UnknownRecord, match="no report report-9"):
        service.publish("org", request([], ["report-9"]))
    assert service.rulings() == []
    assert effects.broadcasts == []
    assert service.rules_section() == ""
