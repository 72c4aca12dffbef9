"""The Gemma 4 MTP assistant drafter against transformers (CPU, float32).

`hf_drafts` drives transformers' own modules through the contract (docs/engine.md): the target
over the prompt, returning its final-normed states and `shared_kv_states`, then the assistant K
times at the prompt's next position. `hf_generate_drafts` records what transformers' assisted
generation (`generate(assistant_model=...)`) drafts in its first round, which is the same thing
in transformers releases that take the prompt's last hidden state there (5.17 takes the first
position's, a bug later fixed; that test is skipped there). Later rounds are checked against
`hf_drafts` on the text accepted so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tests.engine.fast.test_model import NEW_TOKENS, reference_greedy
from tests.fixtures.fast_engine import TINY_VOCAB, tiny_assistant

from swarmlab.engine.fast.assistant import AssistantDrafter, AssistantSpeculator, MtpAssistant
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import GreedyRunner
from swarmlab.engine.fast.spec_graph import SpeculatorSetupError
from swarmlab.engine.loading import CheckpointError, is_assistant_checkpoint, load_assistant
from swarmlab.engine.speculative import DraftMismatchError, speculative_generate

KS = (1, 3, 6)
MAX_K = 6


def hf_drafts(target: Any, assistant: Any, prompt: list[int], k: int) -> tuple[int, list[int]]:
    """The target's greedy token after `prompt` and the assistant's `k` drafts after it, with
    transformers' modules fed as the contract says."""
    with torch.no_grad():
        out = target(
            torch.tensor([prompt]), output_hidden_states=True, return_shared_kv_states=True
        )
        kv = dict(out.shared_kv_states.items())
        token, state = out.logits[:, -1:].argmax(-1), out.hidden_states[-1][:, -1:]
        first, drafts = int(token), []
        for _ in range(k):
            embedded = target.get_input_embeddings()(token)
            step = assistant(
                inputs_embeds=torch.cat((embedded, state), dim=-1),
                position_ids=torch.tensor([[len(prompt)]]),
                shared_kv_states=kv,
            )
            token, state = step.logits.argmax(-1), step.last_hidden_state
            drafts.append(int(token))
    return first, drafts


def _first_round_takes_the_last_state() -> bool:
    import inspect

    from transformers.generation.candidate_generator import (
        SinglePositionMultiTokenCandidateGenerator as Generator,
    )

    return "is_main_model_prefill" in inspect.getsource(Generator)


def hf_generate_drafts(target: Any, assistant: Any, prompt: list[int], k: int) -> list[int]:
    """The drafts of transformers' first assisted round after `prompt` (greedy)."""
    from transformers.generation.candidate_generator import (
        SinglePositionMultiTokenCandidateGenerator as Generator,
    )

    seen: list[list[int]] = []
    original = Generator.get_candidates

    def record(self: Any, input_ids: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        ids, logits = original(self, input_ids, *args, **kwargs)
        if logits is not None and not seen:
            seen.append(ids[0, input_ids.shape[1] :].tolist())
        return ids, logits

    assistant.generation_config.num_assistant_tokens = k
    Generator.get_candidates = record  # type: ignore[method-assign]
    try:
        target.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            assistant_model=assistant,
            max_new_tokens=k + 2,
            do_sample=False,
        )
    finally:
        Generator.get_candidates = original  # type: ignore[method-assign]
    assert seen, "transformers ran no assisted round (the first token ended generation)"
    return seen[0]


def build(target_model: Any, assistant_model: Any) -> tuple[GreedyRunner, AssistantDrafter]:
    fast = FastDecoder.from_transformers(target_model, max_len=128, max_step_tokens=8)
    fast.keep_hidden()
    runner = GreedyRunner(fast, prefill_chunk=12, verify_widths=tuple(k + 1 for k in KS))
    assistant = MtpAssistant.from_transformers(assistant_model, fast)
    return runner, AssistantDrafter(assistant, MAX_K, use_graph=False)


@pytest.fixture(scope="module", params=[True, False], ids=["centroid-head", "full-head"])
def assistant_model(request: pytest.FixtureRequest, tiny_target: Any) -> Any:
    return tiny_assistant(tiny_target.config, seed=3, ordered=request.param)


@pytest.fixture(scope="module")
def setup(tiny_target: Any, assistant_model: Any) -> tuple[GreedyRunner, AssistantDrafter]:
    return build(tiny_target, assistant_model)


@pytest.fixture(scope="module")
def expected(tiny_target: Any, test_prompts: list[list[int]]) -> list[list[int]]:
    return [reference_greedy(tiny_target, prompt, NEW_TOKENS) for prompt in test_prompts]


def test_first_drafts_equal_the_contract_run_through_transformers(
    tiny_target: Any,
    assistant_model: Any,
    setup: tuple[GreedyRunner, AssistantDrafter],
    test_prompts: list[list[int]],
) -> None:
    runner, drafter = setup
    for prompt in test_prompts:
        first = runner.prefill(prompt).tolist()
        assert hf_drafts(tiny_target, assistant_model, prompt, MAX_K) == (
            first[0],
            drafter.propose(prompt + first, MAX_K),
        )


@pytest.mark.skipif(
    not _first_round_takes_the_last_state(),
    reason="this transformers drafts its first round from the prompt's first hidden state",
)
def test_first_drafts_equal_transformers_assisted_generation(
    tiny_target: Any,
    assistant_model: Any,
    setup: tuple[GreedyRunner, AssistantDrafter],
    test_prompts: list[list[int]],
) -> None:
    runner, drafter = setup
    for prompt in test_prompts:
        first = runner.prefill(prompt).tolist()
        ours = drafter.propose(prompt + first, 5)
        assert ours == hf_generate_drafts(tiny_target, assistant_model, prompt, 5)


class ScriptedDrafter:
    """Asks the assistant every round (recording what it proposed), but hands the target the
    true continuation for the first `round % (k + 1)` drafts and a wrong token after, so every
    acceptance count, and so every row of the kept hidden states, occurs."""

    def __init__(self, assistant: AssistantDrafter, continuation: list[int]) -> None:
        self.assistant = assistant
        self.continuation = continuation
        self.rounds: list[tuple[list[int], list[int]]] = []

    def propose(self, context: list[int], k: int) -> list[int]:
        self.rounds.append((context, self.assistant.propose(context, k)))
        truth = self.continuation[len(context) : len(context) + k]
        right = len(self.rounds) % (k + 1)
        return (truth[:right] + [(t + 1) % TINY_VOCAB for t in truth[right:]] + [0] * k)[:k]


def test_later_drafts_use_the_accepted_text_only(
    tiny_target: Any,
    assistant_model: Any,
    setup: tuple[GreedyRunner, AssistantDrafter],
    test_prompts: list[list[int]],
    expected: list[list[int]],
) -> None:
    runner, drafter = setup
    prompt = test_prompts[3]  # several sliding windows long
    scripted = ScriptedDrafter(drafter, prompt + expected[3])
    tokens, stats = speculative_generate(runner, scripted, prompt, NEW_TOKENS, 3)
    assert tokens == expected[3]
    assert stats.accepted_at[2] > 0 and stats.accepted < stats.drafted
    for context, drafts in scripted.rounds[1:]:
        assert hf_drafts(tiny_target, assistant_model, context[:-1], 3) == (context[-1], drafts)


@pytest.mark.parametrize("k", KS)
def test_assistant_speculative_decoding_equals_greedy(
    setup: tuple[GreedyRunner, AssistantDrafter],
    test_prompts: list[list[int]],
    expected: list[list[int]],
    k: int,
) -> None:
    runner, drafter = setup
    for prompt, greedy in zip(test_prompts, expected, strict=True):
        tokens, stats = speculative_generate(runner, drafter, prompt, NEW_TOKENS, k)
        assert tokens == greedy
        assert stats.drafted == stats.steps * k
        assert stats.accepted + stats.steps >= NEW_TOKENS - 1
        assert stats.accepted == sum(stats.accepted_at)


@pytest.mark.parametrize("k", KS)
def test_the_one_graph_step_keeps_and_counts_what_the_host_loop_does(
    setup: tuple[GreedyRunner, AssistantDrafter],
    test_prompts: list[list[int]],
    expected: list[list[int]],
    k: int,
) -> None:
    """Same drafts from the same kept states: the device step equals the host loop."""
    runner, drafter = setup
    speculator = AssistantSpeculator(runner, drafter.assistant, k)
    for prompt, greedy in zip(test_prompts, expected, strict=True):
        tokens, ours = speculator.generate(prompt, NEW_TOKENS)
        _, theirs = speculative_generate(runner, drafter, prompt, NEW_TOKENS, k)
        assert tokens == greedy
        assert ours == theirs
    stop = expected[3][9]
    tokens, _ = speculator.generate(test_prompts[3], NEW_TOKENS, {stop})
    assert tokens == expected[3][: expected[3].index(stop) + 1]


class ScriptedSpeculator(AssistantSpeculator):
    """The one-graph step (run eagerly) that records what the assistant drafted each step but
    verifies the true continuation for the first `step % (k + 1)` drafts and wrong tokens after,
    so every acceptance count, and every row of the kept hidden states, occurs."""

    def __init__(self, runner: GreedyRunner, drafter: AssistantDrafter, text: list[int]) -> None:
        self.text = text
        self.rounds: list[tuple[int, int, list[int]]] = []
        super().__init__(runner, drafter.assistant, 3, use_graph=False)

    def _draft_tokens(self) -> torch.Tensor:
        drafts = super()._draft_tokens()
        position = int(self.position)
        self.rounds.append((position, int(self.pending), drafts.tolist()))
        truth = (self.text[position + 1 : position + 1 + self.k] + [0] * self.k)[: self.k]
        right = len(self.rounds) % (self.k + 1)
        scripted = truth[:right] + [(t + 1) % TINY_VOCAB for t in truth[right:]]
        return torch.tensor(scripted, device=drafts.device)


def test_the_one_graph_step_drafts_from_the_accepted_text_only(
    tiny_target: Any,
    assistant_model: Any,
    setup: tuple[GreedyRunner, AssistantDrafter],
    test_prompts: list[list[int]],
    expected: list[list[int]],
) -> None:
    runner, drafter = setup
    prompt = test_prompts[3]
    text = prompt + expected[3]
    scripted = ScriptedSpeculator(runner, drafter, text)
    tokens, stats = scripted.generate(prompt, NEW_TOKENS)
    assert tokens == expected[3]
    assert stats.accepted_at[2] > 0 and stats.accepted < stats.drafted
    for position, pending, drafts in scripted.rounds[1:]:
        assert pending == text[position]
        assert hf_drafts(tiny_target, assistant_model, text[:position], 3) == (pending, drafts)


def test_the_one_graph_step_refuses_an_assistant_over_another_model(
    tiny_target: Any, setup: tuple[GreedyRunner, AssistantDrafter]
) -> None:
    _, drafter = setup
    other = FastDecoder.from_transformers(tiny_target, max_len=128, max_step_tokens=8)
    with pytest.raises(SpeculatorSetupError, match="another model"):
        AssistantSpeculator(GreedyRunner(other, prefill_chunk=12), drafter.assistant, 3)


def test_kept_hidden_states_are_the_final_normed_states(
    tiny_target: Any, setup: tuple[GreedyRunner, AssistantDrafter], test_prompts: list[list[int]]
) -> None:
    runner, _ = setup
    fast = runner.model
    prompt = test_prompts[3]
    with torch.no_grad():
        states = tiny_target(torch.tensor([prompt]), output_hidden_states=True).hidden_states[-1][0]
    runner.prefill(prompt[:-4])
    assert fast.hidden_positions is not None and fast.hidden_out is not None
    assert fast.hidden_positions.tolist()[:2] == [len(prompt) - 5, -1]
    torch.testing.assert_close(fast.hidden_out[0], states[-5])
    runner.verify(prompt[-4:], len(prompt) - 4)
    assert fast.hidden_positions.tolist()[:5] == [*range(len(prompt) - 4, len(prompt)), -1]
    torch.testing.assert_close(fast.hidden_out[:4], states[-4:])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vocab": TINY_VOCAB // 2}, "vocabulary"),
        ({"backbone": 32}, "backbone_hidden_size"),
    ],
)
def test_a_mismatched_assistant_is_refused(
    tiny_target: Any, options: dict[str, int], message: str
) -> None:
    fast = FastDecoder.from_transformers(tiny_target, max_len=64, max_step_tokens=8)
    with pytest.raises(DraftMismatchError, match=message):
        MtpAssistant.from_transformers(tiny_assistant(tiny_target.config, 4, **options), fast)


def test_an_assistant_with_other_head_sizes_or_a_wider_window_is_refused(
    tiny_target: Any,
) -> None:
    fast = FastDecoder.from_transformers(tiny_target, max_len=64, max_step_tokens=8)
    wide = tiny_assistant(tiny_target.config, 4, window=fast.shape.sliding_window + 1)
    with pytest.raises(DraftMismatchError, match="sliding window"):
        MtpAssistant.from_transformers(wide, fast)
    head_dim = fast.shape.attention["sliding_attention"].head_dim * 2
    with pytest.raises(DraftMismatchError, match="cannot attend"):
        MtpAssistant.from_transformers(
            tiny_assistant(tiny_target.config, 4, head_dim=head_dim), fast
        )


def test_the_drafter_needs_a_target_that_keeps_its_hidden_states(
    tiny_target: Any, assistant_model: Any
) -> None:
    fast = FastDecoder.from_transformers(tiny_target, max_len=64, max_step_tokens=8)
    with pytest.raises(ValueError, match="keep_hidden"):
        AssistantDrafter(MtpAssistant.from_transformers(assistant_model, fast), 3, use_graph=False)


def test_an_assistant_checkpoint_loads_from_its_directory(
    tiny_target: Any, tmp_path: Path, tiny_model_dir: Path
) -> None:
    model = tiny_assistant(tiny_target.config, 5)
    model.save_pretrained(tmp_path)
    assert is_assistant_checkpoint(tmp_path) and not is_assistant_checkpoint(tiny_model_dir)
    loaded = load_assistant(tmp_path)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    with pytest.raises(CheckpointError, match="gemma4_assistant"):
        load_assistant(tiny_model_dir)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="cannot load the weights"):
        load_assistant(tmp_path)


# torch.compile imports torch.jit, which warns about its own deprecation on import.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_a_compiled_proposal_gives_the_eager_drafts(
    setup: tuple[GreedyRunner, AssistantDrafter], test_prompts: list[list[int]]
) -> None:
    runner, eager = setup
    compiled = AssistantDrafter(eager.assistant, MAX_K, use_graph=False, compile_step=True)
    for prompt in test_prompts[2:4]:
        context = prompt + runner.prefill(prompt).tolist()
        assert compiled.propose(context, MAX_K) == eager.propose(context, MAX_K)
