"""The kernels `benchmarks/engine_matmat.py` times compute the product they claim to (under
Triton's interpreter on CPU, compiled on CUDA): a streaming rate of a wrong kernel would
mean nothing. Split programs store per-split partials; their sum is the product."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch
from tests.fixtures.fast_engine import load_benchmark

pytest.importorskip("triton")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("engine_matmat")


@pytest.mark.parametrize("split", [1, 2])
@pytest.mark.parametrize(
    ("kind", "flags"),
    [
        ("pointer", {}),
        ("pointer", {"HINT": "evict_first", "PEEL": True}),
        ("tma", {}),
        ("tma", {"PEEL": True}),
    ],
    ids=["pointer", "pointer-evict-peeled", "tma", "tma-peeled"],
)
def test_bench_kernels_multiply(bench: ModuleType, kind: str, flags: dict[str, Any], split: int):
    from triton.tools.tensor_descriptor import TensorDescriptor

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n, k, width, bn, bk = 48, 256, 3, 16, 64
    generator = torch.Generator().manual_seed(split)
    weight = torch.randn(n, k, generator=generator).to(device)
    x = torch.randn(width, k, generator=generator).to(device)
    y = torch.full((split * width * n,), float("nan"), device=device)
    shape = {"W": width, "WP": 16, "BN": bn, "BK": bk, "SPLIT": split}
    if kind == "tma":
        desc = TensorDescriptor.from_tensor(weight, [bn, bk])
        bench.bare_matmat[(n // bn, split)](desc, x, y, n, k, **shape, TMA=True, **flags)
    else:
        bench.bare_matmat[(n // bn, split)](weight, x, y, n, k, **shape, **flags)
    got = y.view(split, width, n).sum(0).cpu()
    want = x.cpu().double() @ weight.cpu().double().t()
    # float32 products (tf32 on CUDA tensor cores)
    torch.testing.assert_close(got.double(), want, rtol=1e-2, atol=1e-1)
