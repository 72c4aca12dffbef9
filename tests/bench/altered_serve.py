"""The reference engine with one deliberate fault: call ALTER_AT_CALL of greedy generation
returns a different third token. The identity check must catch it as DIVERGENT.

Run by the harness as a submission's serve.py (cwd = the submission; MODEL_ID, PORT and
SERVED_MODEL_NAME come from the harness).
"""

from __future__ import annotations

import os
from pathlib import Path

from swarmlab.engine.backend import Backend, BackendOptions, create_backend, register_backend
from swarmlab.engine.server import ServeOptions, serve

ALTER_AT_CALL = int(os.environ["ALTER_AT_CALL"])


class AlteredOnce:
    """Delegates to the reference backend, except for one generation call."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.calls = 0

    def generate(
        self, prompt_ids: list[int], max_tokens: int, stop_ids: set[int] | None
    ) -> list[int]:
        self.calls += 1
        generated = self.inner.generate(prompt_ids, max_tokens, stop_ids)
        if self.calls == ALTER_AT_CALL and len(generated) > 2:
            generated[2] = (generated[2] + 1) % 256
            print(f"altered: changed token 2 of generation call {self.calls}", flush=True)
        return generated

    def prompt_logprobs(self, prompt_ids: list[int]) -> list[dict[int, float] | None]:
        return self.inner.prompt_logprobs(prompt_ids)


def altered(options: BackendOptions) -> Backend:
    return AlteredOnce(create_backend("reference", options))


register_backend("altered_once", altered)
serve(
    ServeOptions(
        model_dir=Path(os.environ["MODEL_ID"]),
        port=int(os.environ["PORT"]),
        served_model_name=os.environ["SERVED_MODEL_NAME"],
        backend="altered_once",
    )
)
