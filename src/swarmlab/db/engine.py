"""Engines and sessions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode (readers never block the writer), with foreign keys on, a busy
timeout, and full fsync so an acknowledged write survives a power cut. Write transactions
start with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout instead of failing
half-way. `Database.write()` is the one way to change data; `Database.read()` is for queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_S = 30
# Key of the PostgreSQL advisory lock that orders record writes (messages, results, events).
RECORD_LOCK_KEY = 0x5357524D
_IMMEDIATE = "swarmlab_immediate"
_DEFERRED_SYNC = "swarmlab_deferred_sync"


def _prepare_sqlite_file(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine) -> None:
    """Take BEGIN away from pysqlite so write transactions can be IMMEDIATE."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        # Outside a transaction, so it applies to the one beginning now.
        sync = "NORMAL" if options.get(_DEFERRED_SYNC, False) else "FULL"
        connection.exec_driver_sql(f"PRAGMA synchronous={sync}")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_IMMEDIATE) else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL (`sqlite:///path` or `postgresql+psycopg://...`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite_file(parsed)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            pool_size=20,
            max_overflow=20,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(parsed, pool_size=20, max_overflow=20, pool_pre_ping=True)


class Database:
    """An engine plus its session factory: what services receive to reach the database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; it never commits."""
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self, *, sync: bool = True) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception.

        `sync=False` (SQLite only) skips the fsync at this commit, for bookkeeping whose loss
        in a power cut is harmless: the WAL is sequential, so the next synced commit makes it
        durable as well, and a process crash loses nothing either way.
        """
        with self._sessions() as session, session.begin():
            if self.is_sqlite:
                options = {_IMMEDIATE: True, _DEFERRED_SYNC: not sync}
                session.connection(execution_options=options)
            yield session

    def lock_records(self, session: Session) -> None:
        """Serialise record writes across processes so ids and events commit in id order.

        SQLite writers are already serialised by BEGIN IMMEDIATE; PostgreSQL takes a
        transaction-scoped advisory lock.
        """
        if not self.is_sqlite:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RECORD_LOCK_KEY})

    def lock_key(self, session: Session, key: str) -> None:
        """Serialise transactions about one key (e.g. a handle's rate limit) across processes."""
        if not self.is_sqlite:
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
