"""SQLAlchemy models, engine and sessions, Alembic migrations, and the query functions services
use.
"""
