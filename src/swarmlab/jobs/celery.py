"""The Celery executor: the hub publishes each queued job to its flavour's queue, and
`swarmlab worker --broker ...` processes on GPU machines consume them.

The broker only carries job ids; the hub database stays the source of truth. A delivery the hub
no longer considers queued (a duplicate, or a cancelled job) is skipped at claim time, so the
at-least-once delivery that ``acks_late`` gives is safe. Workers take one message at a time
(prefetch 1) and acknowledge it only after the job is over, and run one process per GPU.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

TASK = "swarmlab.run_job"
DEFAULT_PREFIX = "swarmlab."


def queue_name(prefix: str, flavor: str) -> str:
    """The Celery queue of a hardware flavour, e.g. ``swarmlab.h200``."""
    return f"{prefix}{flavor}"


def make_celery(broker: str) -> Celery:
    """A Celery app configured for long GPU jobs: late acks, prefetch 1, no result backend."""
    app = Celery("swarmlab", broker=broker)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        broker_transport_options={"visibility_timeout": 6 * 3600},
    )
    return app


class CeleryDispatcher:
    """The hub's side: publish job ids to the flavour queues."""

    def __init__(self, broker: str | None, prefix: str = DEFAULT_PREFIX) -> None:
        if not broker:
            raise ValueError("the celery executor needs --broker redis://host:6379/0 (or amqp://)")
        self.app = make_celery(broker)
        self.prefix = prefix

    def deliver(self, job_id: str, flavor: str) -> None:
        """Publish one job to its flavour's queue."""
        self.app.send_task(TASK, args=[job_id], queue=queue_name(self.prefix, flavor))

    def start(self) -> None:
        """Nothing to start: publishing connects on first use."""

    def stop(self) -> None:
        """Release the broker connections."""
        self.app.close()


def worker_app(broker: str, run: Any) -> Celery:
    """The worker's side: a Celery app whose one task hands the job id to ``run``."""
    app = make_celery(broker)

    @app.task(name=TASK, acks_late=True)  # type: ignore[untyped-decorator]
    def run_job(job_id: str) -> None:
        run(job_id)

    return app
