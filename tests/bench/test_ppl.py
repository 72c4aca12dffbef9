"""PPL math: NLL over the target span only, token-weighted aggregate, contract errors named."""

from __future__ import annotations

import math

import pytest

from swarmlab.bench.errors import EndpointError
from swarmlab.bench.ppl import aggregate_ppl, target_nll


def entry(token: int, logprob: float) -> dict[str, dict[str, float]]:
    return {str(token): {"logprob": logprob}, "999": {"logprob": -0.01}}


def test_nll_sums_only_the_target_positions() -> None:
    prompt = [2, 7, 8, 9]
    logprobs = [None, entry(7, -5.0), entry(8, -0.5), entry(9, -0.25)]
    assert target_nll(logprobs, prompt, start=2) == pytest.approx(0.75)
    assert target_nll(logprobs, prompt, start=1) == pytest.approx(5.75)


def test_bare_float_entries_are_accepted() -> None:
    assert target_nll([None, {"7": -1.5}], [2, 7], start=1) == pytest.approx(1.5)


def test_aggregate_is_token_weighted_not_a_mean_of_ppls() -> None:
    nll, counts = [2.0, 30.0], [2, 10]
    assert aggregate_ppl(nll, counts) == pytest.approx(math.exp(32 / 12))
    mean_of_ppls = (math.exp(1.0) + math.exp(3.0)) / 2
    assert aggregate_ppl(nll, counts) != pytest.approx(mean_of_ppls)
    with pytest.raises(ValueError, match="no scored tokens"):
        aggregate_ppl([], [])


@pytest.mark.parametrize(
    ("logprobs", "words"),
    [
        ([None, entry(7, -1.0)], "one entry per prompt token (3)"),
        ("nope", "not a list"),
        ([None, entry(7, -1.0), {"5": {"logprob": -1.0}}], "actual token 8"),
        ([None, entry(7, -1.0), None], "prompt_logprobs[2]"),
        ([None, entry(7, -1.0), entry(8, 0.7)], "float <= 0"),
        ([None, entry(7, -1.0), entry(8, math.nan)], "actual token 8"),
        ([None, entry(7, -1.0), {"8": {"logprob": "x"}}], "actual token 8"),
    ],
)
def test_contract_violations_name_the_position(logprobs: object, words: str) -> None:
    with pytest.raises(EndpointError, match="prompt_logprobs") as caught:
        target_nll(logprobs, [2, 7, 8], start=1)
    assert words in str(caught.value)
