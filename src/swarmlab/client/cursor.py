"""A watch cursor that survives restarts: the id of the newest item already handled."""

from __future__ import annotations

from pathlib import Path

from swarmlab.client.config import write_private


class CursorStore:
    """Holds a stream position, optionally mirrored to a one-line file.

    An empty file means "baselined on an empty stream": the next run must start from the
    beginning rather than baseline again and skip what arrived in between.
    """

    def __init__(self, path: Path | None, initial: str | None = None) -> None:
        self.path = path
        self.value = initial
        self.started = initial is not None
        if initial is None and path is not None and path.is_file():
            self.value = path.read_text(encoding="utf-8").strip() or None
            self.started = True

    def set(self, value: str | None) -> None:
        """Move the cursor (durably, when file-backed) to `value`."""
        self.value = value
        self.started = True
        if self.path is not None:
            write_private(self.path, (value or "") + "\n")
