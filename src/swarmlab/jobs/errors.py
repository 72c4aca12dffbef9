"""Every way a job or submission request can be refused, one type per failure kind.

```
JobsError                   base; the API maps each kind to its HTTP status
├── UnknownRecord           the submission or job named does not exist        (404)
├── NotYours                the caller may not act on someone else's record   (403)
├── SubmissionRejected      the bundle is unsafe, corrupt or its manifest bad (422)
├── SubmissionTooLarge      the bundle is over the challenge's size cap       (413)
├── QuotaExceeded           no job left in the rolling window; carries quota  (429)
├── JobStateConflict        the job is not in a state that allows this        (409)
├── LeaseLost               a worker's lease expired or was taken back        (409)
├── JobNotMeasured          a result names a job that did not complete        (409)
└── ClaimMismatch           a result claims numbers its job did not measure   (422)
```
"""

from __future__ import annotations

from swarmlab.domain.jobs import QuotaState


class JobsError(Exception):
    """Base of every refusal; ``hint`` says what to do next."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UnknownRecord(JobsError):
    pass


class NotYours(JobsError):
    pass


class SubmissionRejected(JobsError):
    pass


class SubmissionTooLarge(JobsError):
    pass


class QuotaExceeded(JobsError):
    """Over quota: ``quota`` tells what is used, what is left and when a slot frees up."""

    def __init__(self, quota: QuotaState) -> None:
        wait = quota.retry_after_s
        when = "never under this challenge" if wait is None else f"in {wait:.0f}s"
        super().__init__(
            f"job quota used: {quota.used} of {quota.limit} in the last "
            f"{quota.window_s / 3600:g} h; the next slot frees {when}",
            "retry after the Retry-After delay, or ask an organizer to run it",
        )
        self.quota = quota


class JobStateConflict(JobsError):
    pass


class LeaseLost(JobsError):
    pass


class JobNotMeasured(JobsError):
    pass


class ClaimMismatch(JobsError):
    pass
