"""Shared test configuration. Fixtures live in `tests/fixtures/<area>.py`, one module per area."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.bench",
    "tests.fixtures.models",
    "tests.fixtures.hub",
    "tests.fixtures.client",
    "tests.fixtures.fast_engine",
    "tests.fixtures.jobs",
]
