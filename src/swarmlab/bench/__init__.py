"""The benchmark harness: manifest validation, server launch and teardown, speed, decode capture,
PPL, greedy identity, summary and significance. Talks to any OpenAI-compatible server; knows
nothing of the hub.

The public API (what the hub's job runner and the upload validator use) is re-exported here and
loaded on first use, so `swarmlab --help` does not pay for httpx:

    from swarmlab.bench import RunConfig, BenchSettings, run_benchmark
    result = run_benchmark(RunConfig(submission=..., state_dir=..., prompts=...),
                           on_progress=print, cancel=threading.Event())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BenchError": "swarmlab.bench.errors",
    "BenchSettings": "swarmlab.bench.runner",
    "IdentityReport": "swarmlab.bench.identity",
    "IdentityVerdict": "swarmlab.bench.identity",
    "Manifest": "swarmlab.bench.manifest",
    "ManifestError": "swarmlab.bench.errors",
    "ManifestProblem": "swarmlab.bench.errors",
    "Progress": "swarmlab.bench.runner",
    "RunConfig": "swarmlab.bench.runner",
    "RunResult": "swarmlab.bench.runner",
    "check_identity": "swarmlab.bench.identity",
    "load_manifest": "swarmlab.bench.manifest",
    "parse_manifest": "swarmlab.bench.manifest",
    "run_benchmark": "swarmlab.bench.runner",
}

__all__ = [
    "BenchError",
    "BenchSettings",
    "IdentityReport",
    "IdentityVerdict",
    "Manifest",
    "ManifestError",
    "ManifestProblem",
    "Progress",
    "RunConfig",
    "RunResult",
    "check_identity",
    "load_manifest",
    "parse_manifest",
    "run_benchmark",
]

if TYPE_CHECKING:
    from swarmlab.bench.errors import BenchError, ManifestError, ManifestProblem
    from swarmlab.bench.identity import IdentityReport, IdentityVerdict, check_identity
    from swarmlab.bench.manifest import Manifest, load_manifest, parse_manifest
    from swarmlab.bench.runner import BenchSettings, Progress, RunConfig, RunResult, run_benchmark


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'swarmlab.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
