"""What the server needs from an inference backend, and the registry that names backends.

The server owns HTTP, validation, the tokenizer and the chat template; a backend only turns
token ids into token ids (greedy) and scores prompts. A backend named `N` registers itself with
`register_backend("N", factory)` when its module is imported; `create_backend("N", options)`
imports `swarmlab.engine.N` on first use, so a new backend plugs in by adding that module
alone, without touching the server.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

DEFAULT_PREFILL_CHUNK = 512
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@runtime_checkable
class Backend(Protocol):
    """Greedy decoding and prompt scoring over token ids, one request at a time.

    The server calls these from one thread at a time (it holds a lock), so a backend may keep
    mutable state such as a pre-allocated KV cache.
    """

    def generate(
        self, prompt_ids: list[int], max_tokens: int, stop_ids: set[int] | None
    ) -> list[int]:
        """Greedy (argmax) continuation of `prompt_ids`: at most `max_tokens` new ids, ending
        early after the first id in `stop_ids` (that id is included). Must be token-identical to
        plain greedy autoregressive decoding of the same checkpoint."""
        ...

    def prompt_logprobs(self, prompt_ids: list[int]) -> list[dict[int, float] | None]:
        """Teacher-forced log-probabilities: entry 0 is None; entry i maps the actual token
        `prompt_ids[i]` and the top-1 token at position i to their log-probabilities given
        `prompt_ids[:i]`. Computed in bounded prefill chunks so that a full-vocabulary float32
        log-softmax never exists for the whole prompt at once."""
        ...


@dataclass(frozen=True)
class BackendOptions:
    """What every backend factory receives: where the checkpoint is and how to run it."""

    model_dir: Path
    device: str = "cpu"
    dtype: str = "float32"
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK


BackendFactory = Callable[[BackendOptions], Backend]


class UnknownBackendError(Exception):
    """No backend of that name is registered, and no module `swarmlab.engine.<name>` defines one."""


_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make `factory` available as `--backend name`. Re-registering a name replaces it."""
    if not _NAME.match(name):
        raise ValueError(f"backend name {name!r} must be lower-case letters, digits and _")
    _REGISTRY[name] = factory


def registered_backends() -> list[str]:
    """The names registered so far (backends in modules not yet imported are not listed)."""
    return sorted(_REGISTRY)


def get_backend_factory(name: str) -> BackendFactory:
    """The factory registered as `name`, importing `swarmlab.engine.<name>` if needed."""
    if name not in _REGISTRY and _NAME.match(name):
        try:
            importlib.import_module(f"swarmlab.engine.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"swarmlab.engine.{name}":
                raise
    if name not in _REGISTRY:
        known = ", ".join(registered_backends()) or "none"
        raise UnknownBackendError(
            f"no backend named {name!r} (registered: {known}); pass --backend reference, or add "
            f"a module swarmlab/engine/{name}.py that calls register_backend({name!r}, factory)"
        )
    return _REGISTRY[name]


def create_backend(name: str, options: BackendOptions) -> Backend:
    """Build the backend `name` for the checkpoint and device in `options`."""
    return get_backend_factory(name)(options)
