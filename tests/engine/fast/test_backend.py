"""The `fast` backend serves the same contract as the reference backend on the tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmlab.engine.backend import Backend, BackendOptions, create_backend
from swarmlab.engine.fast.backend import ENV_NAMES, FastBackend, FastOptionError, FastOptions
from swarmlab.engine.speculative import ModelDrafter

PROMPT = [2, 45, 322, 81, 84, 266, 273, 81, 73] * 5  # longer than the sliding window


@pytest.fixture(scope="module")
def options(tiny_model_dir: Path) -> BackendOptions:
    return BackendOptions(tiny_model_dir, prefill_chunk=16)


@pytest.fixture(scope="module")
def reference(options: BackendOptions) -> Backend:
    return create_backend("reference", options)


@pytest.mark.parametrize("draft", ["", "ngram"])
def test_fast_backend_matches_the_reference_backend(
    options: BackendOptions, reference: Backend, draft: str
) -> None:
    fast = FastBackend.from_options(options, {"SWARMLAB_FAST_DRAFT": draft, "SWARMLAB_FAST_K": "3"})
    assert fast.generate(PROMPT, 24, None) == reference.generate(PROMPT, 24, None)
    expected = reference.generate(PROMPT[:20], 24, None)
    stop = expected[5]
    assert fast.generate(PROMPT[:20], 24, {stop}) == expected[: expected.index(stop) + 1]


@pytest.mark.parametrize("one_graph", ["0", "1"])
def test_a_draft_checkpoint_drives_speculative_decoding(
    options: BackendOptions, reference: Backend, tiny_model_dir: Path, one_graph: str
) -> None:
    env = {
        "SWARMLAB_FAST_DRAFT": str(tiny_model_dir),
        "SWARMLAB_FAST_K": "4",
        "SWARMLAB_FAST_SPEC_GRAPH": one_graph,
    }
    fast = FastBackend.from_options(options, env)
    assert (fast.speculator is not None) == (one_graph == "1")
    assert isinstance(fast.drafter, ModelDrafter) == (one_graph == "0")
    assert fast.generate(PROMPT, 20, None) == reference.generate(PROMPT, 20, None)
    expected = reference.generate(PROMPT[:20], 24, None)
    stop = expected[6]
    assert fast.generate(PROMPT[:20], 24, {stop}) == expected[: expected.index(stop) + 1]
    assert fast.max_context == 4096 - 4


def test_an_assistant_directory_drives_mtp_drafting(
    options: BackendOptions, reference: Backend, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tests.fixtures.fast_engine import tiny_assistant

    from swarmlab.engine.fast.assistant import AssistantDrafter, AssistantSpeculator
    from swarmlab.engine.loading import load_config

    tiny_assistant(load_config(tiny_model_dir), seed=6).save_pretrained(tmp_path)
    env = {
        "SWARMLAB_FAST_DRAFT": str(tmp_path),
        "SWARMLAB_FAST_K": "5",
        "SWARMLAB_FAST_SPEC_GRAPH": "0",
    }
    host_loop = FastBackend.from_options(options, env)
    assert isinstance(host_loop.drafter, AssistantDrafter) and host_loop.speculator is None
    assert host_loop.runner.model.hidden_out is not None
    one_graph = FastBackend.from_options(options, env | {"SWARMLAB_FAST_SPEC_GRAPH": "1"})
    assert isinstance(one_graph.speculator, AssistantSpeculator) and one_graph.drafter is None
    expected = reference.generate(PROMPT, 20, None)
    assert host_loop.generate(PROMPT, 20, None) == one_graph.generate(PROMPT, 20, None) == expected


def test_prompt_lookup_runs_in_one_graph_or_the_host_loop(
    options: BackendOptions, reference: Backend
) -> None:
    """`SWARMLAB_FAST_SPEC_GRAPH=1` (the CUDA default; here on CPU the step's body runs
    eagerly) searches on the device, `0` on the host: both give the reference's tokens."""
    from swarmlab.engine.fast.spec_graph import LookupSpeculator
    from swarmlab.engine.speculative import NgramDrafter

    env = {"SWARMLAB_FAST_DRAFT": "ngram", "SWARMLAB_FAST_K": "3", "SWARMLAB_FAST_SPEC_GRAPH": "0"}
    host_loop = FastBackend.from_options(options, env)
    assert isinstance(host_loop.drafter, NgramDrafter) and host_loop.speculator is None
    one_graph = FastBackend.from_options(options, env | {"SWARMLAB_FAST_SPEC_GRAPH": "1"})
    assert isinstance(one_graph.speculator, LookupSpeculator) and one_graph.drafter is None
    prompt = PROMPT * 3
    expected = reference.generate(prompt, 20, None)
    assert host_loop.generate(prompt, 20, None) == one_graph.generate(prompt, 20, None) == expected


def test_prompt_logprobs_match_the_reference_backend(
    options: BackendOptions, reference: Backend
) -> None:
    fast = create_backend("fast", options)
    ours, theirs = fast.prompt_logprobs(PROMPT), reference.prompt_logprobs(PROMPT)
    assert len(ours) == len(PROMPT) and ours[0] is None
    for mine, expected in zip(ours[1:], theirs[1:], strict=True):
        assert mine is not None and expected is not None
        assert mine.keys() == expected.keys()
        for token, logprob in expected.items():
            assert mine[token] == pytest.approx(logprob, abs=1e-4)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SWARMLAB_FAST_KERNELS": "fp4"}, "one of torch, triton, int8, int4"),
        ({"SWARMLAB_FAST_KERNELS": "triton"}, "needs --device cuda and the triton"),
        ({"SWARMLAB_FAST_KERNELS": "int4"}, "SWARMLAB_FAST_KERNELS=int4 needs --device cuda"),
        ({"SWARMLAB_FAST_K": "zero"}, "positive integer"),
        ({"SWARMLAB_FAST_MAX_CONTEXT": "0"}, "positive integer"),
        ({"SWARMLAB_FAST_SPEC_GRAPH": "yes"}, "must be 0 or 1"),
        ({"SWARMLAB_FAST_COMPILE_DRAFT": "true"}, "must be 0 or 1"),
    ],
)
def test_bad_fast_options_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(FastOptionError, match=message):
        FastOptions.from_env(env, "cpu")


def test_the_assistant_proposal_is_compiled_by_default_on_cuda_only() -> None:
    assert FastOptions.from_env({}, "cuda").compile_draft
    assert not FastOptions.from_env({}, "cpu").compile_draft
    assert not FastOptions.from_env({"SWARMLAB_FAST_COMPILE_DRAFT": "0"}, "cuda").compile_draft
    assert FastOptions.from_env({"SWARMLAB_FAST_COMPILE_DRAFT": "1"}, "cpu").compile_draft


@pytest.mark.slow
def test_serve_with_backend_fast_answers_completions(
    tiny_model_dir: Path, reference: Backend, tmp_path: Path
) -> None:
    import httpx
    from tests.fixtures.models import engine_server

    args = ("--backend", "fast", "--served-model-name", "tiny", "--threads", "1")
    with engine_server(tiny_model_dir, *args, log=tmp_path / "server.log") as (url, _process):
        body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 16, "temperature": 0}
        body |= {"ignore_eos": True, "return_token_ids": True, "add_special_tokens": False}
        response = httpx.post(f"{url}/v1/completions", json=body, timeout=60.0)
        too_long = httpx.post(
            f"{url}/v1/completions", json=body | {"max_tokens": 5000}, timeout=60.0
        )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["token_ids"] == reference.generate(PROMPT, 16, None)
    assert too_long.status_code == 400


def test_the_fast_example_submission_is_valid_and_names_only_known_settings(tmp_path: Path) -> None:
    import shutil

    from swarmlab.bench.manifest import load_manifest

    example = (
        Path(__file__).resolve().parents[3] / "challenges" / "fast-gemma" / "examples" / "fast"
    )
    copy = tmp_path / "fast"
    shutil.copytree(example, copy)
    (copy / "model").mkdir()
    manifest = load_manifest(copy)
    assert manifest.serve == ("python", "serve.py")
    assert "--backend" in (copy / "serve.py").read_text(encoding="utf-8")
    fast_settings = {key for key in manifest.env if key.startswith("SWARMLAB_FAST_")}
    assert fast_settings and fast_settings <= set(ENV_NAMES)
