"""What every stage gets from the runner: the client, the state folder, progress and stops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarmlab.bench.client import EndpointClient
from swarmlab.bench.runlog import RunLog


@dataclass(frozen=True)
class StageContext:
    """A stage's view of the run.

    `progress(done, total)` reports work units (requests); `checkpoint()` raises RunCancelled
    or RunTimedOut when the run must stop, and is called before every request.
    """

    client: EndpointClient
    state_dir: Path
    log: RunLog
    progress: Callable[[int, int], None]
    checkpoint: Callable[[], None]
