"""SQLite engine settings: WAL, foreign keys, busy timeout, and which commits fsync."""

from __future__ import annotations

from sqlalchemy import text

from swarmlab.db import Database


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/deep/er/hub.db")  # parent folders are created
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    db.dispose()


def test_only_bookkeeping_writes_skip_the_fsync(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/hub.db")
    with db.write() as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    with db.write(sync=False) as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    with db.write() as session:  # the same pooled connection is back to FULL
        assert session.execute(text("PRAGMA synchronous")).scalar() == 2
    db.dispose()
