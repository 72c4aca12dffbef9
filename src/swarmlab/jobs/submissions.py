"""Accepting a submission bundle: size cap, safe extraction, the harness's manifest check, then
an immutable, content-addressed record owned by the uploader.

The bundle is unpacked once at upload, into a throwaway folder, with the same safe extraction the
runner uses, and its manifest is validated by the harness's own validator: a broken entry is
refused here, with the harness's message, before any job is queued or GPU spent.
"""

from __future__ import annotations

import io
import secrets
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from swarmlab.bench.errors import ManifestError
from swarmlab.bench.manifest import load_manifest
from swarmlab.db import Database, utcnow
from swarmlab.db.models import Submission
from swarmlab.jobs.errors import SubmissionRejected, SubmissionTooLarge, UnknownRecord
from swarmlab.storage.blobs import BlobStore
from swarmlab.storage.bundles import BundleError, extract


def submission_json(row: Submission) -> dict[str, Any]:
    """The public view of a submission."""
    return {
        "id": row.id,
        "owner": row.owner,
        "sha256": row.sha256,
        "size": row.size,
        "manifest": row.manifest,
        "created_at": row.created_at.isoformat(),
    }


def check_size(size: int, cap: int) -> None:
    """Refuse a bundle over the challenge's cap before reading any more of it."""
    if size > cap:
        raise SubmissionTooLarge(
            f"the bundle is {size} bytes; this challenge accepts at most {cap}",
            "leave weights, caches and virtual environments out of the submission folder",
        )


def validated_manifest(data: bytes) -> dict[str, Any]:
    """Unpack the bundle safely and return its manifest, or say exactly what is wrong."""
    with tempfile.TemporaryDirectory(prefix="swarmlab-upload-") as tmp:
        root = Path(tmp) / "bundle"
        try:
            extract(io.BytesIO(data), root)
            manifest = load_manifest(root)
        except BundleError as exc:
            raise SubmissionRejected(
                str(exc), "re-pack the folder with `swarmlab submit DIR`"
            ) from exc
        except ManifestError as exc:
            raise SubmissionRejected(str(exc), "fix manifest.json (see docs/harness.md)") from exc
    return manifest.to_json()


def store_submission(
    db: Database, blobs: BlobStore, owner: str, data: bytes, cap: int
) -> tuple[dict[str, Any], bool]:
    """Store a bundle for ``owner``; returns (view, created).

    Uploading the same bytes again returns the existing record (``created`` False), so a retried
    upload never makes a duplicate.
    """
    check_size(len(data), cap)
    manifest = validated_manifest(data)
    sha256 = blobs.put(data)
    try:
        with db.write() as session:
            existing = _existing(session, owner, sha256)
            if existing is not None:
                return submission_json(existing), False
            row = Submission(
                id=f"sub-{secrets.token_hex(6)}",
                owner=owner,
                sha256=sha256,
                size=len(data),
                manifest=manifest,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return submission_json(row), True
    except IntegrityError:  # the same upload, concurrently: the other one won
        with db.read() as session:
            winner = _existing(session, owner, sha256)
            assert winner is not None
            return submission_json(winner), False


def _existing(session: Session, owner: str, sha256: str) -> Submission | None:
    query = select(Submission).where(Submission.owner == owner, Submission.sha256 == sha256)
    return session.scalars(query).first()


def get_submission(db: Database, submission_id: str) -> dict[str, Any]:
    """One submission's public view."""
    with db.read() as session:
        row = session.get(Submission, submission_id)
        if row is None:
            raise UnknownRecord(f"no submission {submission_id}", "list yours with GET /v1/jobs")
        return submission_json(row)
