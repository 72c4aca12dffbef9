"""The public API the job runner uses is importable from `swarmlab.bench`, and only that."""

from __future__ import annotations

import subprocess
import sys

import pytest

import swarmlab.bench as bench


def test_every_export_resolves() -> None:
    for name in bench.__all__:
        assert getattr(bench, name).__name__ == name


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = bench.nope  # type: ignore[attr-defined]


def test_importing_the_package_is_light() -> None:
    code = "import sys, swarmlab.bench; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert sorted(bench.__all__) == sorted(bench._EXPORTS)
