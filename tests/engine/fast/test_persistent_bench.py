"""The kernels `benchmarks/engine_persistent.py` times compute the chain they claim to (under
Triton's interpreter on CPU, compiled on CUDA): a streaming rate of a wrong kernel would mean
nothing. The interpreter runs programs one after another, so the persistent kernel runs whole
chains with one program, and several programs only on a one-stage chain, whose single barrier
opens at once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from tests.fixtures.fast_engine import load_benchmark

pytest.importorskip("triton")

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if not CUDA and not INTERPRETED:
        pytest.skip("no CUDA, and triton was imported before TRITON_INTERPRET=1 was set")
    return load_benchmark("engine_persistent")


def _chain(bench: ModuleType, layers: int = 2, head: bool = True) -> Any:
    small_head = bench.SMALL_HEAD if head else None
    return bench.make_chain(bench.SMALL_LAYER, layers, small_head, DEVICE, torch.float32, seed=3)


@pytest.mark.parametrize("tile", [(16, 32), (8, 64)], ids=["16x32", "8x64"])
def test_launch_chain_matches_reference(bench: ModuleType, tile: tuple[int, int]):
    chain = _chain(bench)
    tiles = [(*tile, 4)] * (len(chain.shapes) + 1)
    launches = bench.matvec_launches(chain, tiles, pdl=False, hint="", stages=2)
    assert len(launches) == 2 * len(bench.SMALL_LAYER) + 1
    error = bench.relative_error(chain, lambda: [launch() for launch in launches], False)
    assert error < 1e-5


@pytest.mark.parametrize("order", ["strided", "contiguous"])
@pytest.mark.parametrize("spin", ["atomic", "volatile"])
def test_persistent_chain_matches_reference(bench: ModuleType, spin: str, order: str):
    chain = _chain(bench)
    tiles = [(16, 32)] * 3 + [(8, 64)] * 4
    run = bench.Persistent(chain, tiles, programs=1, spin=spin, order=order, hint="")
    assert bench.relative_error(chain, run, False) < 1e-5
    assert int(run.counter.item()) == run.arrivals == 2 * len(bench.SMALL_LAYER) + 1


@pytest.mark.parametrize("order", ["strided", "contiguous"])
def test_persistent_programs_share_a_stage(bench: ModuleType, order: str):
    """Three programs split 8 row blocks (uneven), each streaming tiles across its blocks."""
    chain = bench.make_chain([(64, 48)], 1, None, DEVICE, torch.float32, seed=4)
    run = bench.Persistent(chain, [(8, 32)], programs=3, order=order, hint="")
    assert bench.relative_error(chain, run, False) < 1e-5
    assert int(run.counter.item()) == 3


def test_chain_rejects_a_stage_too_short_to_feed_the_next(bench: ModuleType):
    with pytest.raises(ValueError, match="cannot feed"):
        bench.make_chain([(32, 64), (64, 48)], 2, None, DEVICE, torch.float32)


@pytest.mark.skipif(not INTERPRETED, reason="--cpu runs the kernels under the interpreter")
def test_cpu_run_checks_every_mode(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "persistent.json"
    report = bench.main(["--cpu", "--quick", "--lm-head", "--out", str(out)])
    assert json.loads(out.read_text(encoding="utf-8")) == report
    assert report["modes"]["launches"]["check_rel_err"] < 1e-5
    variants = report["modes"]["persistent_1_per_sm"]["variants"]
    assert len(variants) == 4
    assert all(row["check_rel_err"] < 1e-5 for row in variants.values())
    assert "check relative error" in capsys.readouterr().out
