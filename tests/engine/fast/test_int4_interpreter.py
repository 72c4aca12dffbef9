"""The Triton int4 mat-vec on CPU, under Triton's interpreter, against float64.

`TRITON_INTERPRET=1` must be set before `triton.jit` decorates the kernel, and the test
process may already hold the compiled-mode module, so the kernel runs in a child process.
The interpreter cannot time autotuning candidates (it has no GPU driver), so the kernels
module offers it one config; the child swaps in others to cover both dequantization paths
and tiles narrower and wider than a group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

CHILD = """
import json, sys
import torch, triton
from swarmlab.engine.fast import kernels
from swarmlab.engine.quant import dequantize_int4, quantize_int4

# (rows, columns, group, dtype): rows never a multiple of the block, groups ragged per tile
SHAPES = [(7, 256, 128, "float32"), (37, 384, 64, "float32"), (131, 1024, 128, "float32"),
          (5, 64, 8, "float32"), (9, 512, 512, "float32"), (37, 384, 64, "bfloat16"),
          (300, 640, 128, "bfloat16")]
CONFIGS = [(4, 256, False), (8, 128, True), (2, 512, True), (16, 64, False)]
torch.manual_seed(0)
rows = []
for block_n, block_k, factored in CONFIGS:
    config = {"BLOCK_N": block_n, "BLOCK_K": block_k, "FACTORED": factored}
    kernels._gemv_int4_kernel.configs = [triton.Config(config)]
    kernels._gemv_int4_kernel.cache.clear()
    for n, k, group, name in SHAPES:
        dtype = getattr(torch, name)
        packed, scale, zero = quantize_int4(torch.randn(n, k, dtype=dtype), group)
        x = torch.randn(1, k, dtype=dtype)
        out = torch.ops.swarmlab.gemv_int4(x, packed, scale, zero)
        reference = x.double() @ dequantize_int4(packed, scale.double(), zero.double()).T
        error = float((out.double() - reference).norm() / reference.norm())
        rows.append({"config": config, "shape": [n, k, group], "dtype": name,
                     "out_shape": list(out.shape), "out_dtype": str(out.dtype), "error": error})
opcheck = torch.library.opcheck(
    torch.ops.swarmlab.gemv_int4.default, (x.float(), packed, scale.float(), zero.float())
)
json.dump({"rows": rows, "opcheck": opcheck}, sys.stdout)
"""


@pytest.fixture(scope="module")
def interpreted() -> dict[str, object]:
    src = Path(__file__).resolve().parents[3] / "src"
    env = os.environ | {
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_int4_kernel_matches_float64_on_ragged_shapes_for_every_tile(
    interpreted: dict[str, object],
) -> None:
    rows = interpreted["rows"]
    assert isinstance(rows, list) and len(rows) == 4 * 7
    for row in rows:
        n, _, _ = row["shape"]
        assert row["out_shape"] == [1, n]
        assert row["out_dtype"] == f"torch.{row['dtype']}"
        # float32 accumulation; bf16 outputs are rounded to 8 bits of mantissa (~0.2%)
        bound = 1e-5 if row["dtype"] == "float32" else 1e-2
        assert row["error"] < bound, row


def test_int4_op_passes_torch_library_opcheck(interpreted: dict[str, object]) -> None:
    """Schema, fake (meta) implementation and dispatch: what torch.compile relies on."""
    opcheck = interpreted["opcheck"]
    assert isinstance(opcheck, dict) and set(opcheck.values()) == {"SUCCESS"}
