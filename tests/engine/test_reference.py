"""The reference backend is transformers' own greedy decoding, and scores prompts correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from swarmlab.engine.backend import Backend, BackendOptions, create_backend
from swarmlab.engine.reference import ReferenceBackend

TEXTS = [
    "Hi",
    "What is the sum of the first ten prime numbers? Explain each step, then give the answer.",
    "def area(r):\n    return 3.14159 * r * r\n\nfor r in [1, 2, 3]:\n    print(r, area(r))\n" * 3,
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> ReferenceBackend:
    built = create_backend("reference", BackendOptions(tiny_model_dir))
    assert isinstance(built, ReferenceBackend)
    return built


@pytest.fixture(scope="module")
def prompts(tiny_model_dir: Path) -> list[list[int]]:
    from swarmlab.engine.loading import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    return [list(tokenizer(text).input_ids) for text in TEXTS]


def test_prompts_cover_the_sliding_window(
    backend: ReferenceBackend, prompts: list[list[int]]
) -> None:
    window = backend.model.config.sliding_window
    assert len(prompts[0]) < window < 2 * window < len(prompts[-1])


def test_reference_backend_satisfies_the_protocol(backend: ReferenceBackend) -> None:
    assert isinstance(backend, Backend)


@pytest.mark.parametrize("index", range(len(TEXTS)))
def test_greedy_equals_transformers_generate(
    backend: ReferenceBackend, prompts: list[list[int]], index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without stop ids, 48 tokens, past the sliding window: `generate` must not stop at EOS
    either, so its generation config's eos is cleared for the comparison."""
    prompt = prompts[index]
    monkeypatch.setattr(backend.model.generation_config, "eos_token_id", None)
    expected = backend.model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=48)
    assert backend.generate(prompt, 48, None) == expected[0, len(prompt) :].tolist()


def test_greedy_output_is_varied_and_stops_where_generate_stops(
    backend: ReferenceBackend, prompts: list[list[int]]
) -> None:
    """Any stop id ends the generation right after its first occurrence, as `generate` does
    with that id as its eos."""
    prompt = prompts[1]
    free = backend.generate(prompt, 40, None)
    assert len(free) == 40 and len(set(free)) > 12  # random weights, yet no collapse into a loop
    stop = free[24]
    expected = backend.model.generate(
        torch.tensor([prompt]), do_sample=False, max_new_tokens=40, eos_token_id=stop
    )
    stopped = backend.generate(prompt, 40, {stop})
    assert stopped == expected[0, len(prompt) :].tolist() == free[: free.index(stop) + 1]


def test_zero_max_tokens_generates_nothing(
    backend: ReferenceBackend, prompts: list[list[int]]
) -> None:
    assert backend.generate(prompts[0], 0, None) == []


def _full_forward_logprobs(backend: ReferenceBackend, prompt: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        logits = backend.model(torch.tensor([prompt], device=backend.model.device)).logits[0]
    return torch.log_softmax(logits.float(), dim=-1)


@pytest.mark.parametrize("chunk", [5, 16, 512])
def test_prompt_logprobs_match_a_full_forward(
    backend: ReferenceBackend, prompts: list[list[int]], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt = prompts[-1]
    full = _full_forward_logprobs(backend, prompt)
    monkeypatch.setattr(backend, "prefill_chunk", chunk)
    entries = backend.prompt_logprobs(prompt)
    assert len(entries) == len(prompt) and entries[0] is None
    for position in range(1, len(prompt)):
        entry = entries[position]
        assert entry is not None
        row = full[position - 1]
        top = int(row.argmax())
        assert set(entry) == {prompt[position], top}
        assert entry[prompt[position]] == pytest.approx(row[prompt[position]].item(), abs=1e-4)
        assert entry[top] == pytest.approx(row[top].item(), abs=1e-4)


def test_a_one_token_prompt_has_only_the_null_entry(backend: ReferenceBackend) -> None:
    assert backend.prompt_logprobs([2]) == [None]


def test_prefill_chunk_must_be_positive(backend: ReferenceBackend) -> None:
    with pytest.raises(ValueError, match="prefill_chunk"):
        ReferenceBackend(backend.model, prefill_chunk=0)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_greedy_on_cuda_equals_transformers_generate(
    tiny_model_dir: Path, prompts: list[list[int]], dtype: str
) -> None:
    gpu = ReferenceBackend.from_options(BackendOptions(tiny_model_dir, device="cuda", dtype=dtype))
    gpu.model.generation_config.eos_token_id = None
    for prompt in prompts:
        expected = gpu.model.generate(
            torch.tensor([prompt], device="cuda"), do_sample=False, max_new_tokens=48
        )
        assert gpu.generate(prompt, 48, None) == expected[0, len(prompt) :].tolist()


@pytest.mark.gpu
@needs_cuda
def test_prompt_logprobs_on_cuda_bfloat16_match_a_full_forward(
    tiny_model_dir: Path, prompts: list[list[int]]
) -> None:
    gpu = ReferenceBackend.from_options(
        BackendOptions(tiny_model_dir, device="cuda", dtype="bfloat16", prefill_chunk=16)
    )
    prompt = prompts[-1]
    full = _full_forward_logprobs(gpu, prompt)
    entries = gpu.prompt_logprobs(prompt)
    for position in range(1, len(prompt)):
        entry = entries[position]
        assert entry is not None
        assert entry[prompt[position]] == pytest.approx(
            full[position - 1, prompt[position]].item(), abs=0.1
        )
