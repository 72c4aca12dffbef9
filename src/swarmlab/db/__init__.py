"""SQLAlchemy models, engine and sessions, Alembic migrations, and the query functions services
use. `Database` (engine.py) is the entry point; `Base` (base.py) is what models derive from.
"""

from swarmlab.db.base import Base, utcnow
from swarmlab.db.engine import Database, make_engine
from swarmlab.db.migrate import upgrade

__all__ = ["Base", "Database", "make_engine", "upgrade", "utcnow"]
