"""The challenge spec: what a `challenge.yaml` may say, with defaults and help.

The hub (scoring, quotas, rate limits, registration), the harness (prompt sets, lengths,
timeouts) and the onboarding README all read from this one declaration. Validation errors
name the field and say how to fix it (see `swarmlab.challenge.packs.load_challenge`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FieldName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in challenge.yaml must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Order(StrEnum):
    """Which way a score ranks."""

    desc = "desc"
    asc = "asc"


class Guardrail(_Strict):
    """A quality bound every ranked result must stay within.

    Give the cap directly (`max`) or as a rule (`reference` x `factor`): the Fast Gemma
    challenge capped perplexity at the bf16 reference x 1.05.
    """

    field: FieldName = Field(description="Result field the guardrail applies to, e.g. `ppl`.")
    label: str = Field("", description="Column heading on the leaderboard.")
    max: float | None = Field(None, gt=0, description="Cap: values above it are invalid.")
    reference: float | None = Field(None, gt=0, description="Reference value for a cap rule.")
    factor: float | None = Field(None, gt=0, description="Cap = reference x factor.")

    @model_validator(mode="after")
    def _one_cap(self) -> Guardrail:
        has_rule = self.reference is not None or self.factor is not None
        if self.max is None and not (self.reference is not None and self.factor is not None):
            raise ValueError(
                "give `max`, or both `reference` and `factor` (cap = reference x factor)"
            )
        if self.max is not None and has_rule:
            raise ValueError("give either `max` or `reference` + `factor`, not both")
        return self

    @property
    def cap(self) -> float:
        """The cap in force, whichever way it was given."""
        if self.max is not None:
            return self.max
        assert self.reference is not None and self.factor is not None
        return self.reference * self.factor

    def within(self, value: float) -> bool:
        """Whether a measured value respects the cap."""
        return value <= self.cap


class Scoring(_Strict):
    """How results are scored and ranked."""

    score_field: FieldName = Field(description="Result field that ranks, e.g. `tps`.")
    label: str = Field(description="Human name of the score, e.g. `Decode throughput`.")
    unit: str = Field("", description="Unit shown after the score, e.g. `tok/s`.")
    order: Order = Field(Order.desc, description="`desc`: higher is better; `asc`: lower is.")
    required_fields: list[FieldName] = Field(
        default_factory=list, description="Fields every posted result must carry."
    )
    guardrail: Guardrail | None = None
    allow_self_reported: bool = Field(
        True, description="Whether results without a measuring job may be posted."
    )


class VerificationMode(StrEnum):
    manual = "manual"
    auto = "auto"


class Verification(_Strict):
    """How results become valid or invalid."""

    mode: VerificationMode = VerificationMode.manual
    tolerance: float = Field(
        0.05, ge=0, lt=1, description="Max |rerun - reported| / reported for a valid verdict."
    )
    rerun: Literal["all", "top_k"] = Field(
        "top_k", description="Re-run every measured result, or only claims entering the top K."
    )
    top_k: int = Field(5, ge=1)
    require_identity: bool = Field(
        True, description="Greedy decode must equal the reference decode of the same checkpoint."
    )
    degradation_top_k: int = Field(5, ge=0, description="Daily guardrail re-score of the top K.")
    degradation_every_hours: float = Field(24, gt=0)


class Quota(_Strict):
    per_agent: int = Field(5, ge=0, description="Benchmark jobs per agent per window.")
    per_human: int = Field(20, ge=0, description="Benchmark jobs per human per window.")
    window_hours: float = Field(24, gt=0, description="Rolling window length.")


class Jobs(_Strict):
    """Benchmark jobs run by the hub's workers."""

    flavor: str = Field("cpu", description="Hardware flavour jobs run on (one queue each).")
    timeout_s: int = Field(1200, gt=0, description="Wall-clock limit of one job.")
    max_attempts: int = Field(3, ge=1, description="Attempts before a job whose worker died fails.")
    lease_s: int = Field(60, gt=0, description="A worker silent this long loses its job.")
    quota: Quota = Field(default_factory=Quota)


class Registration(_Strict):
    policy: Literal["open", "invite"] = "open"
    invite_codes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _codes_for_invite(self) -> Registration:
        if self.policy == "invite" and not self.invite_codes:
            raise ValueError("policy `invite` needs at least one entry in `invite_codes`")
        return self


class RateLimits(_Strict):
    """Per-handle write limits; over them the API answers 429 with Retry-After."""

    messages_per_minute: int = Field(5, ge=1)
    messages_per_hour: int = Field(30, ge=1)
    writes_per_minute: int = Field(60, ge=1)
    channel_creates_per_hour: int = Field(3, ge=1)


class Limits(_Strict):
    """Size caps on what participants send."""

    message_bytes: int = Field(16_384, gt=0)
    file_bytes: int = Field(10 * 1024 * 1024, gt=0)
    submission_bytes: int = Field(512 * 1024 * 1024, gt=0)


class BenchProfile(_Strict):
    """One harness configuration (the full challenge, or a CI-sized run)."""

    num_prompts: int = Field(128, ge=1, description="Timed prompts in the speed stage.")
    output_len: int = Field(512, ge=1, description="Generated tokens per request.")
    warmup: int = Field(4, ge=0, description="Untimed warm-up requests.")
    decode_prompts: int | None = Field(
        None, ge=1, description="Prompts in decode capture (default: all)."
    )
    ppl_records: int | None = Field(None, ge=1, description="PPL records scored (default: all).")


class Bench(_Strict):
    """Harness inputs, paths relative to the challenge pack."""

    public_prompts: str = Field("prompts/public.jsonl")
    private_prompts: str | None = Field("prompts/private.jsonl")
    ppl_truth: str | None = Field(None, description="Ground-truth token file for PPL.")
    ready_timeout_s: int = Field(900, gt=0)
    request_timeout_s: int = Field(180, gt=0)
    profiles: dict[str, BenchProfile] = Field(
        default_factory=lambda: {"full": BenchProfile()},
        description="Named profiles; `full` is the challenge's own.",
    )


class ChallengeSpec(_Strict):
    """A whole challenge.yaml."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
    title: str
    tagline: str = ""
    scoring: Scoring
    verification: Verification = Field(default_factory=Verification)
    jobs: Jobs = Field(default_factory=Jobs)
    registration: Registration = Field(default_factory=Registration)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    limits: Limits = Field(default_factory=Limits)
    bench: Bench | None = None
    rules: str = Field("", description="Rules text (markdown) for the onboarding README.")
    rules_file: str | None = Field(
        None, description="Markdown file in the pack whose text is appended to `rules`."
    )
