"""Workspace files: each handle writes only under its own name; anyone reads.

The bytes go to the content-addressed blob store, the name to the `files` table, so a
replaced file keeps its old bytes reachable by sha256 and identical uploads are stored once.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from swarmlab.api.errors import Invalid, NotFound, PayloadTooLarge
from swarmlab.api.hub import Hub
from swarmlab.api.listing import Collection
from swarmlab.db import utcnow
from swarmlab.db.models import WorkspaceFile

SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
MAX_PATH = 512
FILES = Collection(
    key=WorkspaceFile.path, time=WorkspaceFile.updated_at, text=(WorkspaceFile.path,)
)


def check_path(path: str) -> str:
    """A safe relative path (`traces/run-1.json`): no traversal, no hidden tricks."""
    segments = path.split("/")
    if len(path) > MAX_PATH or not all(SEGMENT_RE.fullmatch(s) for s in segments):
        raise Invalid(
            f"{path!r} is not an allowed file path",
            "use relative paths of letters, digits, '.', '_' and '-' separated by '/' "
            f"(no '..', no leading '/' or '.', at most {MAX_PATH} characters)",
            code="bad_path",
        )
    return path


def check_size(hub: Hub, size: int) -> None:
    """413 when `size` is over the challenge's file cap."""
    cap = hub.spec.limits.file_bytes
    if size > cap:
        raise PayloadTooLarge(
            f"the file is over this challenge's cap of {cap} bytes",
            "split it, compress it, or keep only the part others need",
        )


def render_file(entry: WorkspaceFile) -> dict[str, Any]:
    """A file's metadata."""
    return {
        "agent_id": entry.owner,
        "path": entry.path,
        "sha256": entry.sha256,
        "size": entry.size,
        "content_type": entry.content_type,
        "updated_at": entry.updated_at.isoformat(),
        "url": f"/v1/files/{entry.owner}/{entry.path}",
    }


def store(
    hub: Hub, owner: str, path: str, data: bytes, content_type: str | None
) -> tuple[WorkspaceFile, bool]:
    """Write `data` as `owner/path`; return the entry and whether it is new."""
    check_size(hub, len(data))
    sha256 = hub.blobs.put(data)
    kind = content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
    with hub.db.write() as session:
        entry = session.get(WorkspaceFile, (owner, path))
        created = entry is None
        if entry is None:
            entry = WorkspaceFile(owner=owner, path=path)
            session.add(entry)
        entry.sha256, entry.size, entry.content_type, entry.updated_at = (
            sha256,
            len(data),
            kind,
            utcnow(),
        )
    return entry, created


def load(hub: Hub, owner: str, path: str) -> tuple[WorkspaceFile, bytes]:
    """The entry and bytes of `owner/path`, or 404."""
    with hub.db.read() as session:
        entry = session.get(WorkspaceFile, (owner, path))
    if entry is None:
        raise NotFound(
            f"{owner} has no file {path!r}",
            f"GET /v1/files/{owner} lists that workspace",
            code="unknown_file",
        )
    return entry, hub.blobs.get(entry.sha256)
