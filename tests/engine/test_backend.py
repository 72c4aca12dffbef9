"""Backends are found by name; a new one plugs in by registering itself."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from swarmlab.engine import backend as registry
from swarmlab.engine.backend import (
    Backend,
    BackendOptions,
    UnknownBackendError,
    create_backend,
    get_backend_factory,
    register_backend,
)


class EchoBackend:
    """Repeats the last prompt token: enough to prove the registry hands out what was added."""

    def __init__(self, options: BackendOptions) -> None:
        self.options = options

    def generate(
        self, prompt_ids: list[int], max_tokens: int, stop_ids: set[int] | None
    ) -> list[int]:
        return [prompt_ids[-1]] * max_tokens

    def prompt_logprobs(self, prompt_ids: list[int]) -> list[dict[int, float] | None]:
        return [None] + [{t: 0.0} for t in prompt_ids[1:]]


@pytest.fixture(autouse=True)
def _restore_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_a_registered_backend_is_created_with_the_options(tmp_path: Path) -> None:
    register_backend("echo", EchoBackend)
    built = create_backend("echo", BackendOptions(tmp_path, device="cpu", dtype="bfloat16"))
    assert isinstance(built, Backend) and isinstance(built, EchoBackend)
    assert built.options.dtype == "bfloat16"
    assert built.generate([4, 9], 3, None) == [9, 9, 9]


def test_the_reference_backend_is_found_by_importing_its_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in a fresh server process: nothing registered, the module not imported yet."""
    registry._REGISTRY.clear()
    monkeypatch.delitem(sys.modules, "swarmlab.engine.reference", raising=False)
    factory = get_backend_factory("reference")
    assert factory.__qualname__ == "ReferenceBackend.from_options"
    assert registry.registered_backends() == ["reference"]


def test_an_unknown_backend_says_how_to_add_one() -> None:
    with pytest.raises(
        UnknownBackendError, match=r"swarmlab/engine/warp_drive\.py.*register_backend"
    ):
        get_backend_factory("warp_drive")


@pytest.mark.parametrize("name", ["Fast", "fast-path", "../x", ""])
def test_backend_names_are_plain_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        register_backend(name, EchoBackend)
    with pytest.raises(UnknownBackendError):
        get_backend_factory(name)
