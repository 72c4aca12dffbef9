"""Module swaps: weight-only int8 and int4 keep each weight within half a quantization step,
and on the tiny float32 model the logits move by measured, bounded amounts."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import GreedyRunner
from swarmlab.engine.quant import (
    GroupSizeError,
    Int4Linear,
    Int8Linear,
    LinearFactory,
    dequantize_int4,
    int4_factory,
    int4_group_size,
    logit_error,
    pack_int4,
    quantize_int4,
    swap_linears,
    unpack_int4,
    weight_bytes,
)


def test_int8_weights_are_within_half_a_step_of_the_originals() -> None:
    weight = torch.randn(64, 96)
    layer = Int8Linear(weight, use_kernel=False)
    dequantized = layer.qweight.float() * layer.scale[:, None]
    assert layer.qweight.dtype == torch.int8
    assert bool(((dequantized - weight).abs() <= layer.scale[:, None] / 2 + 1e-7).all())
    x = torch.randn(3, 96)
    torch.testing.assert_close(layer(x), x @ dequantized.T)


def test_int8_decoder_reads_a_quarter_of_the_float32_bytes_and_keeps_most_argmaxes(
    tiny_target: Any, test_prompts: list[list[int]]
) -> None:
    exact = GreedyRunner(FastDecoder.from_transformers(tiny_target, 128, 16), prefill_chunk=16)
    quantized_model = FastDecoder.from_transformers(tiny_target, 128, 16)
    before = weight_bytes(quantized_model)
    assert swap_linears(quantized_model, Int8Linear, use_kernel=False) == 38
    # int8 weights plus one float32 scale per row: about a quarter of float32
    assert weight_bytes(quantized_model) < 0.3 * before
    quantized = GreedyRunner(quantized_model, prefill_chunk=16)
    prompt = test_prompts[4]
    reference = torch.cat([logits for _, logits in exact.teacher_forced_logits(prompt)])
    approx = torch.cat([logits for _, logits in quantized.teacher_forced_logits(prompt)])
    agreement = (reference.argmax(-1) == approx.argmax(-1)).float().mean()
    assert agreement > 0.7


def _groups(tensor: torch.Tensor, group_size: int) -> torch.Tensor:
    return tensor.reshape(tensor.shape[0], -1, group_size)


@pytest.mark.parametrize("group_size", [2, 32, 128])
def test_int4_weights_are_within_half_a_step_of_the_originals_per_group(group_size: int) -> None:
    torch.manual_seed(0)
    # columns with different spreads and a shifted block: the groups are far from alike
    weight = torch.randn(48, 256) * torch.linspace(0.01, 3.0, 256) + (torch.arange(256) >= 128)
    packed, scale, offset = quantize_int4(weight, group_size)
    assert packed.dtype == torch.uint8 and packed.shape == (48, 128)
    assert scale.shape == offset.shape == (48, 256 // group_size)
    assert scale.dtype == offset.dtype == weight.dtype
    codes = _groups(unpack_int4(packed), group_size)
    assert int(codes.max()) <= 15
    error = _groups(dequantize_int4(packed, scale, offset) - weight, group_size).abs()
    half_step = scale[..., None] / 2
    assert bool((error <= half_step * (1 + 1e-5) + 1e-7).all())
    # the grid spans each group: its minimum is code 0, its maximum code 15
    assert bool((codes.amin(-1) == 0).all()) and bool((codes.amax(-1) == 15).all())


def test_int4_bfloat16_weights_stay_within_half_a_step_plus_rounding() -> None:
    torch.manual_seed(1)
    weight = torch.randn(32, 512, dtype=torch.bfloat16)
    packed, scale, offset = quantize_int4(weight, 128)
    assert scale.dtype == offset.dtype == torch.bfloat16
    error = _groups(dequantize_int4(packed, scale, offset).float() - weight.float(), 128).abs()
    # bf16 rounding of the offset (|min| ~ 7.5 steps) and of code * scale adds < 0.1 step
    assert bool((error <= 0.6 * scale.float()[..., None]).all())
    assert float((error / scale.float()[..., None]).mean()) < 0.3  # uniform rounding: ~0.25


def test_int4_packing_round_trips_and_puts_even_columns_in_the_low_nibble() -> None:
    codes = torch.randint(0, 16, (5, 64), dtype=torch.uint8)
    packed = pack_int4(codes)
    assert packed.shape == (5, 32) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed), codes)
    assert pack_int4(torch.tensor([[1, 2, 15, 0]], dtype=torch.uint8)).tolist() == [[0x21, 0x0F]]
    every_byte = torch.arange(256, dtype=torch.uint8).view(2, 128)
    assert torch.equal(pack_int4(unpack_int4(every_byte)), every_byte)


@pytest.mark.parametrize(
    ("group_size", "message"),
    [(96, "power of two"), (0, "power of two"), (1, "power of two"), (128, "does not divide")],
)
def test_int4_group_size_errors_say_what_to_pick(group_size: int, message: str) -> None:
    with pytest.raises(GroupSizeError, match=message):
        Int4Linear(torch.randn(8, 320), use_kernel=False, group_size=group_size)


def test_int4_linear_multiplies_by_its_dequantized_weight_and_counts_its_bytes() -> None:
    weight = torch.randn(24, 256)
    layer = Int4Linear(weight, use_kernel=False, group_size=64)
    for rows in (1, 3):
        x = torch.randn(rows, 256)
        torch.testing.assert_close(layer(x), x @ layer.dequantized().T)
    holder = nn.Sequential(layer)
    # packed codes (half a byte each) + one float32 scale and offset per group of 64
    assert weight_bytes(holder) == 24 * 128 + 2 * 24 * 4 * 4


def test_int4_group_size_is_the_largest_power_of_two_dividing_every_input_width(
    tiny_target: Any,
) -> None:
    model = FastDecoder.from_transformers(tiny_target, 128, 16)
    assert int4_group_size(model) == 8  # the per-layer-embedding projection has K = 8
    assert int4_group_size(nn.Sequential(nn.Linear(384, 4), nn.Linear(256, 4))) == 128
    assert int4_group_size(nn.Sequential(nn.Linear(384, 4)), preferred=64) == 64


def _teacher_forced(model: FastDecoder, prompts: list[list[int]]) -> torch.Tensor:
    runner = GreedyRunner(model, prefill_chunk=16)
    return torch.cat([lg for prompt in prompts for _, lg in runner.teacher_forced_logits(prompt)])


def _quantized_logits(
    tiny_target: Any, prompts: list[list[int]], factory: LinearFactory
) -> torch.Tensor:
    model = FastDecoder.from_transformers(tiny_target, 128, 16)
    swap_linears(model, factory, use_kernel=False)
    return _teacher_forced(model, prompts)


def test_int4_moves_the_tiny_models_logits_more_than_int8_but_keeps_their_signal(
    tiny_target: Any, test_prompts: list[list[int]]
) -> None:
    """Measured (float32, 6 prompts, 121 positions): int8 11% relative logit error and 90%
    argmax agreement, int4 in groups of 8 54% and 36%. This model is built to be sensitive
    (wide random weights, random norm scales): int8's 0.6% relative weight error already moves
    its logits by 11%, so int4's 4.9% (a step of range / 15 over 8 weights) moves them by half.
    Logits of an unrelated model would be ~140% off and agree on ~1% (1 / 128) of argmaxes."""
    reference = _teacher_forced(FastDecoder.from_transformers(tiny_target, 128, 16), test_prompts)
    int8 = logit_error(reference, _quantized_logits(tiny_target, test_prompts, Int8Linear))
    int4 = logit_error(reference, _quantized_logits(tiny_target, test_prompts, int4_factory(8)))
    assert 0 < int8["relative_logit_error"] < int4["relative_logit_error"] < 0.8
    assert int8["relative_logit_error"] < 0.2
    assert int4["top1_agreement"] < int8["top1_agreement"]
    assert int8["top1_agreement"] > 0.8
    assert int4["top1_agreement"] > 0.2
    # groups of two are exact: each group's two weights are its minimum and maximum
    exact = logit_error(reference, _quantized_logits(tiny_target, test_prompts, int4_factory(2)))
    assert exact["relative_logit_error"] < 1e-4 and exact["top1_agreement"] == 1.0


def test_logit_error_of_identical_and_shifted_logits() -> None:
    logits = torch.randn(10, 32)
    assert logit_error(logits, logits) == {"relative_logit_error": 0.0, "top1_agreement": 1.0}
    shifted = logit_error(logits, logits * 1.5)
    assert shifted["relative_logit_error"] == pytest.approx(0.5)
    assert shifted["top1_agreement"] == 1.0
    assert logit_error(logits, -logits)["top1_agreement"] == 0.0
