"""Alembic environment: migrations compare against `Base.metadata` (every swarmlab model).

`swarmlab.db.migrate.upgrade` passes an open connection in `config.attributes["connection"]`;
the `alembic` command line (with `-x url=...`) gets an engine of its own.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import DateTime
from sqlalchemy.engine import Connection

import swarmlab.db.models  # noqa: F401  (registers every table on Base.metadata)
from swarmlab.db.base import Base, UTCDateTime
from swarmlab.db.engine import make_engine


def _render_item(kind: str, obj: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Write UTC datetime columns as plain `sa.DateTime()`: migrations never import models."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return repr(DateTime())
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the given connection, or over a fresh engine for `-x url=...`."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///swarmlab-data/hub.db ...")
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
