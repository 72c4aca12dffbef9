"""Every way a benchmark run can fail, one type per failure kind.

```
BenchError                  base; `status` is what the job status file records
├── ManifestError           manifest.json is missing or invalid (lists every bad field)
├── EnvironmentSetupError   the server environment could not be built
├── InputError              a prompt, ground-truth or reference-decode file is unusable
├── ServerExitedError       the server process exited (at start or mid-run)
├── ServerNotReadyError     GET /v1/models never answered 200 within the ready timeout
├── RequestTimeoutError     one request took longer than its timeout (a hung server)
├── EndpointError           a response broke the endpoint contract (names the field)
├── RunTimedOut             the run's overall deadline passed          (status `timed_out`)
└── RunCancelled            the caller asked the run to stop            (status `cancelled`)
```

Messages say what went wrong and what to do next; they end up verbatim in `status.json`
and in the run log.
"""

from __future__ import annotations

from dataclasses import dataclass


class BenchError(Exception):
    """Base of every harness failure; `status` is the job status it maps to."""

    status = "error"


@dataclass(frozen=True)
class ManifestProblem:
    """One bad manifest field and how to fix it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ManifestError(BenchError):
    """manifest.json is missing or invalid; `problems` names every bad field and its fix."""

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"manifest.json is invalid:\n{lines}")

    @property
    def fields(self) -> list[str]:
        """The names of the bad fields, in the order found."""
        return [p.field for p in self.problems]


class EnvironmentSetupError(BenchError):
    """Installing the manifest's dependencies failed."""


class InputError(BenchError):
    """A harness input file (prompts, PPL ground truth, reference decode) is unusable."""


class ServerExitedError(BenchError):
    """The server process exited; the message carries the tail of its log."""


class ServerNotReadyError(BenchError):
    """The server never answered `GET /v1/models` with 200 in time."""


class RequestTimeoutError(BenchError):
    """A request outlived its timeout: the server hangs or is far too slow."""


class EndpointError(BenchError):
    """A response broke the endpoint contract (status code, JSON shape, a missing field)."""


class RunTimedOut(BenchError):
    """The run's overall deadline passed."""

    status = "timed_out"


class RunCancelled(BenchError):
    """The caller cancelled the run."""

    status = "cancelled"
