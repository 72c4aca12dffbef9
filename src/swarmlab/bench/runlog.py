"""The run's log file (`server.log`): the harness's own lines and the server's output, prefixed.

Each line is `<UTC time> [<source>] <text>`, with source `harness`, `server` or `install`,
so one file tells the whole story of a run in order. The last server lines are also kept in
memory: when the server dies, the error message quotes them.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

TAIL_LINES = 30


class RunLog:
    """Thread-safe, line-flushed writer of the run log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)

    def write(self, source: str, text: str) -> None:
        """Append one line (or several, each prefixed) from `source`."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._lock:
            for line in text.rstrip("\n").split("\n"):
                if source != "harness":
                    self._tail.append(line)
                if not self._handle.closed:
                    self._handle.write(f"{stamp} [{source}] {line}\n")
            if not self._handle.closed:
                self._handle.flush()

    def info(self, text: str) -> None:
        """A line from the harness itself."""
        self.write("harness", text)

    def tail(self) -> str:
        """The last lines the server (or an installer) printed, for error messages."""
        with self._lock:
            lines = list(self._tail)
        return "\n".join(lines) if lines else "(no output)"

    def close(self) -> None:
        """Close the file; later writes are dropped."""
        with self._lock:
            self._handle.close()


def pump(stream: IO[str], log: RunLog, source: str) -> threading.Thread:
    """Copy a child's output into the log from a daemon thread until the stream closes."""

    def copy() -> None:
        for line in stream:
            log.write(source, line)
        stream.close()

    thread = threading.Thread(target=copy, name=f"log-{source}", daemon=True)
    thread.start()
    return thread
