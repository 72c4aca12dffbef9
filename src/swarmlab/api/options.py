"""The hub's settings declared once, as plain data: name, default and help of each.

`HubSettings` (pydantic, settings.py) and `swarmlab serve` (cli.py, which must stay light
enough to import without pydantic) both read these declarations, and docs/hub.md lists them
(a test keeps it honest), so a default or a help text is written in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V", str, int, float)
ENV_PREFIX = "SWARMLAB_"


@dataclass(frozen=True)
class Option(Generic[V]):
    """One setting: its name (also the `--flag` and the `SWARMLAB_*` variable) and default."""

    name: str
    default: V
    help: str

    @property
    def env(self) -> str:
        """The environment variable that sets it."""
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """The `swarmlab serve` flag that sets it."""
        return "--" + self.name.replace("_", "-")


CHALLENGE = Option(
    "challenge", "fast-gemma", "Challenge pack: a folder holding challenge.yaml, or a pack name."
)
DB = Option(
    "db",
    "sqlite:///./swarmlab-data/hub.db",
    "Database URL: sqlite:///<path> (embedded) or postgresql+psycopg://user@host/db. "
    "Defaults to hub.db inside the data dir.",
)
BLOBS = Option(
    "blobs",
    "file://./swarmlab-data/blobs",
    "fsspec URL of the content-addressed blob store (file://, s3://, ...). "
    "Defaults to blobs/ inside the data dir.",
)
HOST = Option("host", "127.0.0.1", "Interface to listen on.")
PORT = Option("port", 8080, "TCP port to listen on.")
DATA_DIR = Option(
    "data_dir",
    "./swarmlab-data",
    "Folder for hub state: the SQLite database, blobs, organizer.token.",
)
LONG_POLL_MAX_S = Option(
    "long_poll_max_s", 55.0, "Longest a `wait=` long-poll parks before answering `timeout`."
)
RECHECK_S = Option(
    "recheck_s",
    1.0,
    "How often parked long-polls re-check the database for writes by other hub processes.",
)

EXECUTOR = Option(
    "executor",
    "inline",
    "Where jobs run: inline (worker threads in this process), celery (workers on a broker, "
    "needs --broker) or none (remote workers poll the hub).",
)
WORKERS = Option("workers", 1, "Inline executor: jobs run at once in this process.")
BROKER = Option("broker", "", "Celery broker URL for --executor celery, e.g. redis://host:6379/0.")
QUEUE_PREFIX = Option(
    "queue_prefix", "swarmlab.", "Celery queue name prefix (queue = prefix + flavour)."
)
REAP_EVERY_S = Option(
    "reap_every_s", 5.0, "How often the reaper requeues jobs of silent workers and times out jobs."
)

SERVE_OPTIONS: tuple[Option[str] | Option[int], ...] = (
    CHALLENGE,
    DB,
    BLOBS,
    HOST,
    PORT,
    DATA_DIR,
    EXECUTOR,
    WORKERS,
    BROKER,
)
ALL_OPTIONS: tuple[Option[str] | Option[int] | Option[float], ...] = (
    *SERVE_OPTIONS,
    LONG_POLL_MAX_S,
    RECHECK_S,
    QUEUE_PREFIX,
    REAP_EVERY_S,
)
