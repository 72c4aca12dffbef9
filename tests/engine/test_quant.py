"""Module swaps: weight-only int8 keeps each weight within half a quantization step."""

from __future__ import annotations

from typing import Any

import torch

from swarmlab.engine.fast.model import FastDecoder
from swarmlab.engine.fast.runner import GreedyRunner
from swarmlab.engine.quant import Int8Linear, swap_linears, weight_bytes


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
