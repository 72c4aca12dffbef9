"""CUDA-only checks: Triton mat-vecs against cuBLAS, graph replay against eager steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.fixtures.fast_engine import tiny_assistant, tiny_gemma

from swarmlab.engine.backend import BackendOptions, create_backend
from swarmlab.engine.fast.assistant import AssistantDrafter, AssistantSpeculator, MtpAssistant
from swarmlab.engine.fast.backend import FastBackend
from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import GreedyRunner
from swarmlab.engine.fast.spec_graph import LookupSpeculator
from swarmlab.engine.quant import (
    GemvLinear,
    Int4Linear,
    Int8Linear,
    dequantize_int4,
    int4_factory,
    swap_linears,
)
from swarmlab.engine.speculative import speculative_generate

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

# (out, in) shapes of Gemma-4 E4B's mat-vecs, plus ragged ones that exercise the masks.
SHAPES = [
    (3072, 2560),
    (2560, 2048),
    (20480, 2560),
    (2560, 10240),
    (256, 2560),
    (2560, 256),
    (1000, 1000),
    (7, 300),
]


@pytest.mark.parametrize(("n", "k"), SHAPES)
def test_triton_gemv_matches_cublas(n: int, k: int) -> None:
    pytest.importorskip("triton")
    from swarmlab.engine.fast import kernels

    weight = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
    reference = x.double() @ weight.double().T
    out = kernels.gemv(x, weight)
    assert out.shape == (1, n)
    error = (out.double() - reference).norm() / reference.norm()
    assert error < 1e-2


@pytest.mark.parametrize(("n", "k"), SHAPES[:4])
def test_int8_gemv_matches_dequantized_weights(n: int, k: int) -> None:
    pytest.importorskip("triton")
    weight = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    layer = Int8Linear(weight)
    x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
    dequantized = layer.qweight.double() * layer.scale.double()[:, None]
    reference = x.double() @ dequantized.T
    error = (layer(x).double() - reference).norm() / reference.norm()
    assert error < 1e-2


# E4B's shapes (every K a multiple of 128) and ragged row counts.
INT4_SHAPES = [*SHAPES[:6], (1000, 1024), (7, 384)]


@pytest.mark.parametrize(("n", "k"), INT4_SHAPES)
@pytest.mark.parametrize("group_size", [128, 32])
def test_int4_gemv_matches_dequantized_weights(n: int, k: int, group_size: int) -> None:
    pytest.importorskip("triton")
    weight = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    layer = Int4Linear(weight, group_size=group_size)
    x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
    scale, zero = layer.scale.double(), layer.zero.double()
    reference = x.double() @ dequantize_int4(layer.qweight, scale, zero).T
    out = layer(x)
    assert out.shape == (1, n) and out.dtype == torch.bfloat16
    error = (out.double() - reference).norm() / reference.norm()
    assert error < 1e-2


def test_int4_graph_replay_gives_the_eager_int4_tokens() -> None:
    """The int4 op inside a captured step: same tokens as the same kernels run eagerly, and
    mostly the tokens of the dequantize-and-matmul path (under the Triton interpreter on CPU
    all 48 agreed; one step's logits differed by 1.4%, bf16 rounding of the dequantized
    weights on the matmul path)."""
    model = tiny_gemma(seed=1).to("cuda", torch.bfloat16)
    prompt = list(range(3, 40))
    torch_path = FastDecoder.from_transformers(model, max_len=256, max_step_tokens=16)
    swap_linears(torch_path, int4_factory(8), use_kernel=False)
    expected = GreedyRunner(torch_path, prefill_chunk=16, use_graph=False).generate(prompt, 48)
    fast = FastDecoder.from_transformers(model, max_len=256, max_step_tokens=16)
    swap_linears(fast, int4_factory(8), use_kernel=True)
    eager = GreedyRunner(fast, prefill_chunk=16, use_graph=False).generate(prompt, 48)
    graphed = GreedyRunner(fast, prefill_chunk=16, use_graph=True).generate(prompt, 48)
    assert graphed == eager
    agreement = sum(a == b for a, b in zip(eager, expected, strict=True)) / len(expected)
    assert agreement > 0.5


def test_graph_replay_and_triton_give_the_eager_tokens() -> None:
    model = tiny_gemma(seed=1).to("cuda", torch.bfloat16)
    prompt = list(range(3, 40))
    fast = FastDecoder.from_transformers(model, max_len=256, max_step_tokens=16)
    eager = GreedyRunner(fast, prefill_chunk=16, use_graph=False).generate(prompt, 48)
    graphed = GreedyRunner(fast, prefill_chunk=16, use_graph=True).generate(prompt, 48)
    assert graphed == eager
    swap_linears(fast, GemvLinear, use_kernel=True)
    triton_tokens = GreedyRunner(fast, prefill_chunk=16, use_graph=True).generate(prompt, 48)
    agreement = sum(a == b for a, b in zip(triton_tokens, eager, strict=True)) / len(eager)
    assert agreement > 0.5


# The decode step without torch.compile (`swarmlab engine bench` exercises that path); prompt
# lookup takes the one-graph step with its search compiled (the CUDA defaults), and compiling
# warns from torch.jit's own deprecation, which pytest would make an error.
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("draft", ["", "ngram"])
def test_fast_backend_on_cuda_equals_the_reference_backend(
    tiny_model_dir: Path, draft: str
) -> None:
    """float32 on the GPU: graph capture and speculation must not change a token."""
    options = BackendOptions(tiny_model_dir, device="cuda", dtype="float32", prefill_chunk=16)
    reference = create_backend("reference", options)
    env = {
        "SWARMLAB_FAST_KERNELS": "torch",
        "SWARMLAB_FAST_COMPILE": "0",
        "SWARMLAB_FAST_DRAFT": draft,
    }
    fast = FastBackend.from_options(options, env)
    assert isinstance(fast.speculator, LookupSpeculator) == (draft == "ngram")
    prompt = [2, 45, 322, 81, 84, 266, 273, 81, 73] * 5
    assert fast.generate(prompt, 32, None) == reference.generate(prompt, 32, None)


def test_assistant_drafts_replayed_from_a_graph_equal_eager_ones() -> None:
    """float32: the captured K-step proposal gives the eager drafts, and speculation with it
    gives the greedy tokens."""
    target = tiny_gemma(seed=1).to("cuda")
    fast = FastDecoder.from_transformers(target, max_len=256, max_step_tokens=16)
    fast.keep_hidden()
    runner = GreedyRunner(fast, prefill_chunk=16, use_graph=True, verify_widths=(5,))
    assistant = MtpAssistant.from_transformers(tiny_assistant(target.config, 3).to("cuda"), fast)
    eager = AssistantDrafter(assistant, 4, use_graph=False)
    graphed = AssistantDrafter(assistant, 4, use_graph=True)
    assert graphed._draft.graph is not None
    prompt = list(range(3, 40))
    expected = runner.generate(prompt, 48)
    context = prompt + runner.prefill(prompt).tolist()
    assert graphed.propose(context, 4) == eager.propose(context, 4)
    tokens, stats = speculative_generate(runner, graphed, prompt, 48, 4)
    assert tokens == expected and stats.steps > 0
    one_graph = AssistantSpeculator(runner, assistant, 4, use_graph=True)
    assert one_graph._step.graph is not None
    eager_step = AssistantSpeculator(runner, assistant, 4, use_graph=False)
    assert one_graph.generate(prompt, 48) == eager_step.generate(prompt, 48) == (tokens, stats)


# The assistant's drafting steps are compiled by default on CUDA: besides torch.jit's warning
# (see the test above), inductor warns that float32 matmuls could use TF32.
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning")
def test_fast_backend_with_an_assistant_on_cuda_equals_the_reference_backend(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from swarmlab.engine.loading import load_config

    tiny_assistant(load_config(tiny_model_dir), seed=6).save_pretrained(tmp_path)
    options = BackendOptions(tiny_model_dir, device="cuda", dtype="float32", prefill_chunk=16)
    reference = create_backend("reference", options)
    env = {
        "SWARMLAB_FAST_KERNELS": "torch",
        "SWARMLAB_FAST_COMPILE": "0",
        "SWARMLAB_FAST_DRAFT": str(tmp_path),
        "SWARMLAB_FAST_K": "6",
    }
    prompt = [2, 45, 322, 81, 84, 266, 273, 81, 73] * 5
    expected = reference.generate(prompt, 32, None)
    for one_graph in ("0", "1"):
        fast = FastBackend.from_options(options, env | {"SWARMLAB_FAST_SPEC_GRAPH": one_graph})
        kind = AssistantSpeculator if one_graph == "1" else AssistantDrafter
        assert isinstance(fast.speculator or fast.drafter, kind)
        assert fast.generate(prompt, 32, None) == expected


def test_fast_backend_with_int4_kernels_swaps_every_linear(tiny_model_dir: Path) -> None:
    options = BackendOptions(tiny_model_dir, device="cuda", dtype="bfloat16", prefill_chunk=16)
    env = {"SWARMLAB_FAST_KERNELS": "int4", "SWARMLAB_FAST_COMPILE": "0"}
    fast = FastBackend.from_options(options, env)
    modules = list(fast.runner.model.modules())
    assert not any(isinstance(module, torch.nn.Linear) for module in modules)
    assert sum(isinstance(module, Int4Linear) for module in modules) > 0
    tokens = fast.generate([2, 45, 322, 81, 84, 266, 273, 81, 73] * 3, 16, None)
    assert len(tokens) == 16
