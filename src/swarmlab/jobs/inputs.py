"""The organizer's input files a job reads, resolved from the challenge pack.

Self-evaluation jobs read the public prompt set; verification and degradation checks read the
private one, which is never served to participants. The reference greedy decode of a prompt set
lives next to it as ``<set>.reference.jsonl`` (e.g. ``prompts/private.reference.jsonl``); when
it is absent the run skips the identity stage.
"""

from __future__ import annotations

from pathlib import Path

from swarmlab.challenge.packs import ChallengePack
from swarmlab.jobs.runner import JobInputs

INPUT_KINDS = ("prompts", "ppl_truth", "reference_decode")


class MissingInputs(LookupError):
    """The challenge pack has no harness inputs for this prompt set."""


def reference_decode_for(prompts: Path) -> Path:
    """Where a prompt set's reference decode is kept."""
    return prompts.with_name(prompts.name.removesuffix(".jsonl") + ".reference.jsonl")


def job_inputs(pack: ChallengePack, prompt_set: str) -> JobInputs:
    """The local input files for a prompt set (``public`` or ``private``)."""
    bench = pack.spec.bench
    name = (
        None
        if bench is None
        else (bench.private_prompts if prompt_set == "private" else bench.public_prompts)
    )
    if bench is None or name is None:
        raise MissingInputs(
            f"challenge {pack.spec.name} has no {prompt_set} prompt set: add `bench` to challenge.yaml"
        )
    prompts = pack.path(name)
    reference = reference_decode_for(prompts)
    return JobInputs(
        prompts=prompts,
        ppl_truth=pack.path(bench.ppl_truth) if bench.ppl_truth else None,
        reference_decode=reference if reference.is_file() else None,
    )


def input_files(inputs: JobInputs) -> dict[str, Path]:
    """The inputs that exist, by kind (what a remote worker downloads)."""
    named = {
        "prompts": inputs.prompts,
        "ppl_truth": inputs.ppl_truth,
        "reference_decode": inputs.reference_decode,
    }
    return {kind: path for kind, path in named.items() if path is not None}
