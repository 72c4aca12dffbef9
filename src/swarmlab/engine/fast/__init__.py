"""The fast decode path: a re-implemented Gemma-4 decoder with a static KV cache, a CUDA-graph
captured greedy step, Triton mat-vecs and speculative decoding.

Importing this package registers the `fast` backend (`swarmlab engine serve --backend fast`);
torch is imported only when a backend is created.
"""

from __future__ import annotations

from swarmlab.engine.backend import Backend, BackendOptions, register_backend


def _create(options: BackendOptions) -> Backend:
    from swarmlab.engine.fast.backend import FastBackend

    return FastBackend.from_options(options)


register_backend("fast", _create)
