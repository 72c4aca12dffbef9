"""Building a PPL ground-truth file from a reference checkpoint served by a submission.

The original challenge's ground truth (128 records, 61,797 scored tokens) was sampled once from
a larger sibling model (gemma-4-31B-it, temperature 1). swarmlab needs no second model: for
each of the first `records` prompts of a prompt set, the context is the prompt chat-templated
into token ids exactly as decode capture does it, and the target is the served reference
model's own greedy continuation of `target_len` tokens (`ignore_eos`, so every target has the
same length). A faithful server therefore scores a low PPL, and numerical drift in a
candidate (quantisation, a broken kernel) raises it. Build the file once per reference
checkpoint and keep it with the challenge pack (`bench.ppl_truth`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarmlab.bench.artifacts import JsonlWriter
from swarmlab.bench.chat import ChatEncoder, chat_encoder
from swarmlab.bench.client import EndpointClient
from swarmlab.bench.decode import greedy_completion
from swarmlab.bench.environment import DEFAULT_CACHE, prepare_environment
from swarmlab.bench.inputs import Prompt, load_prompts
from swarmlab.bench.manifest import load_manifest
from swarmlab.bench.runlog import RunLog
from swarmlab.bench.server import ServerProcess, launch_spec


@dataclass(frozen=True)
class TruthConfig:
    """Inputs of `make_ppl_truth`; the log goes next to `out` as `<out>.log`."""

    submission: Path
    out: Path
    prompts: Path
    records: int = 128
    target_len: int = 256
    install: bool = True
    env_cache_dir: Path = DEFAULT_CACHE
    tokenizer: Path | None = None
    ready_timeout_s: float = 900.0
    request_timeout_s: float = 180.0
    poll_interval_s: float = 5.0


def make_ppl_truth(
    config: TruthConfig, on_progress: Callable[[int, int], None] = lambda done, total: None
) -> int:
    """Write the ground-truth JSON Lines file; return the number of records written."""
    manifest = load_manifest(config.submission)
    prompts = load_prompts(config.prompts)[: config.records]
    config.out.parent.mkdir(parents=True, exist_ok=True)
    log = RunLog(config.out.with_name(config.out.name + ".log"))
    try:
        env = prepare_environment(
            manifest.dependencies,
            config.submission,
            log,
            install=config.install,
            cache_dir=config.env_cache_dir,
        )
        spec = launch_spec(
            manifest,
            config.submission,
            env.python,
            ready_timeout_s=config.ready_timeout_s,
            poll_interval_s=config.poll_interval_s,
        )
        with ServerProcess(spec, log) as server:
            server.wait_ready()
            client = EndpointClient(
                spec.base_url,
                manifest.model_name,
                timeout_s=lambda: config.request_timeout_s,
                on_broken=lambda: server.check_alive("mid-request", wait_s=2.0),
            )
            tokenizer = config.tokenizer or (
                config.submission / manifest.model_id if manifest.model_is_local else None
            )
            try:
                _write(client, chat_encoder(tokenizer, client), prompts, config, on_progress)
            finally:
                client.close()
    finally:
        log.close()
    return len(prompts)


def _write(
    client: EndpointClient,
    encoder: ChatEncoder,
    prompts: list[Prompt],
    config: TruthConfig,
    on_progress: Callable[[int, int], None],
) -> None:
    """Write every record to a hidden partial file, then move it into place."""
    partial = config.out.with_name(f".{config.out.name}.partial")
    with JsonlWriter(partial) as out:
        for done, prompt in enumerate(prompts, start=1):
            context = encoder.encode(prompt.prompt)
            target, _ = greedy_completion(client, context, config.target_len)
            out.write({"id": prompt.id, "context_token_ids": context, "target_token_ids": target})
            on_progress(done, len(prompts))
    partial.replace(config.out)
