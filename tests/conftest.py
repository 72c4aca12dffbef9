"""Shared test configuration. Fixtures live in `tests/fixtures/<area>.py`, one module per area."""

import os

import torch

# Without CUDA, Triton kernels (the fused decode step) run on CPU through Triton's interpreter.
# It must be chosen before triton is first imported: triton.language's own helpers are
# decorated at import time.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.bench",
    "tests.fixtures.models",
    "tests.fixtures.hub",
    "tests.fixtures.client",
    "tests.fixtures.fast_engine",
    "tests.fixtures.jobs",
]
