"""Reading and writing the files a run leaves in its state directory.

Writes are durable before they return: JSON files go to a temporary sibling, are fsynced and
renamed into place, so a reader (the hub, a crashed run's post-mortem) never sees half a file.
JSON Lines files are appended row by row and fsynced when closed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from swarmlab.bench.errors import InputError


def token_sha256(token_ids: Sequence[int]) -> str:
    """The contract's token hash: sha256 of the comma-joined decimal ids."""
    return hashlib.sha256(",".join(str(t) for t in token_ids).encode("ascii")).hexdigest()


def write_json(path: Path, data: object) -> None:
    """Write `data` as indented JSON, atomically and durably."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def read_json(path: Path) -> Any:
    """Parse a JSON file, raising InputError that names the file on any problem."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSON Lines file; InputError names file and line on a bad row."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number} is not valid JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number} must be a JSON object")
            yield row


class JsonlWriter:
    """Appends rows to a JSON Lines file; each row is flushed, the file fsynced on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] = path.open("w", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row."""
        self._handle.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Flush to disk and close."""
        if not self._handle.closed:
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
