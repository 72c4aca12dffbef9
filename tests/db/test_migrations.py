"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import swarmlab.db.models  # noqa: F401
from swarmlab.db import Base, Database, upgrade


def test_upgrade_head_matches_the_models_and_is_repeatable(fresh_db_url: str) -> None:
    db = Database(fresh_db_url)
    upgrade(db)
    upgrade(db)  # a restart re-runs it: nothing to do, nothing breaks
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() is not None
        assert compare_metadata(context, Base.metadata) == []
    assert {"accounts", "messages", "results", "events"} <= set(
        inspect(db.engine).get_table_names()
    )
    db.dispose()
