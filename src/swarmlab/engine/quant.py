"""Swap the fast decoder's linear layers: Triton mat-vecs, weight-only int8 and int4.

As in gpt-fast, quantization and kernel choice are module swaps on a built `FastDecoder`:
every `nn.Linear` (the fused qkv and gate/up projections, o, down, the per-layer-embedding
projections and the lm_head) is replaced by a module with the same call signature. One-row
inputs (decode steps) go to the Triton kernel; wider inputs (prefill, verification) use a
plain matmul, dequantizing int8 or int4 weights on the fly.

int4 is asymmetric and grouped: each run of `group_size` input columns of a row has its own
scale and offset (the group's minimum), so the 16 levels span exactly [min, max] of the group.
For a symmetric group that is a step of (max - min) / 15 against amax / 7 for symmetric int4,
and skewed groups lose nothing, for one more model-dtype value per group (+3% bytes at 128).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LinearFactory = Callable[[torch.Tensor, bool], nn.Module]


class GemvLinear(nn.Module):
    """A bf16/fp16 weight whose one-row products run on the Triton mat-vec kernel."""

    def __init__(self, weight: torch.Tensor, use_kernel: bool = True) -> None:
        super().__init__()
        self.weight = weight
        self.use_kernel = use_kernel
        if use_kernel:
            from swarmlab.engine.fast import kernels  # noqa: F401  (registers the ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_kernel and x.shape[0] == 1:
            return torch.ops.swarmlab.gemv(x, self.weight)
        return F.linear(x, self.weight)


class Int8Linear(nn.Module):
    """Weight-only int8 with one symmetric scale per output row."""

    def __init__(self, weight: torch.Tensor, use_kernel: bool = True) -> None:
        super().__init__()
        scale = weight.float().abs().amax(dim=1).clamp(min=1e-8) / 127.0
        self.qweight = torch.round(weight.float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.scale = scale.to(weight.dtype)
        self.use_kernel = use_kernel
        if use_kernel:
            from swarmlab.engine.fast import kernels  # noqa: F401  (registers the ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_kernel and x.shape[0] == 1:
            return torch.ops.swarmlab.gemv_int8(x, self.qweight, self.scale)
        return F.linear(x, self.qweight.to(x.dtype) * self.scale[:, None])


INT4_LEVELS = 15  # the largest 4-bit code: codes 0..15 map to offset + code * scale
QUANTIZE_ROWS = 4096  # rows quantized at a time: bounds the float32 temporaries of big matrices


class GroupSizeError(ValueError):
    """An int4 group size that cannot tile a weight's input dimension."""


def check_group_size(in_features: int, group_size: int) -> None:
    """int4 groups must be a power of two (the Triton kernel's tiles) dividing K."""
    if group_size < 2 or group_size & (group_size - 1):
        raise GroupSizeError(
            f"int4 group size {group_size} must be a power of two >= 2 (e.g. 32, 64, 128)"
        )
    if in_features % group_size:
        raise GroupSizeError(
            f"int4 group size {group_size} does not divide the weight's {in_features} input "
            f"columns; pick a power of two that does (int4_group_size(model) finds the largest)"
        )


def quantize_int4(
    weight: torch.Tensor, group_size: int = 128
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric grouped int4: (packed uint8 [N, K/2], scale [N, G], offset [N, G]).

    Scale and offset are rounded to the weight's dtype first and the codes chosen against the
    rounded values, so dequantization (`code * scale + offset`) is the nearest grid point.
    """
    check_group_size(weight.shape[1], group_size)
    parts = [_quantize_rows(rows, group_size) for rows in weight.detach().split(QUANTIZE_ROWS)]
    packed, scale, offset = (torch.cat(column) for column in zip(*parts, strict=True))
    return packed, scale, offset


def _quantize_rows(
    weight: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows, columns = weight.shape
    groups = weight.float().view(rows, columns // group_size, group_size)
    low, high = groups.amin(dim=-1), groups.amax(dim=-1)
    tiny = torch.finfo(weight.dtype).tiny
    scale = ((high - low) / INT4_LEVELS).clamp(min=tiny).to(weight.dtype)
    offset = low.to(weight.dtype)
    codes = torch.round((groups - offset.float()[..., None]) / scale.float()[..., None])
    codes = codes.clamp(0, INT4_LEVELS).to(torch.uint8).view(rows, columns)
    return pack_int4(codes), scale, offset


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """[N, K] codes 0..15 -> [N, K/2] bytes: column 2j in the low nibble, 2j+1 in the high."""
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of `pack_int4`: [N, K/2] bytes -> [N, K] codes (uint8)."""
    return torch.stack((packed & 15, packed >> 4), dim=-1).view(packed.shape[0], -1)


def dequantize_int4(
    packed: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    """[N, K] weight in the scale's dtype: code * scale + offset, per group."""
    codes = unpack_int4(packed)
    rows, groups = scale.shape
    grouped = codes.view(rows, groups, -1).to(scale.dtype)
    return torch.addcmul(offset[..., None], grouped, scale[..., None]).view(rows, -1)


class Int4Linear(nn.Module):
    """Weight-only int4, asymmetric, one scale and offset per `group_size` input columns."""

    def __init__(
        self, weight: torch.Tensor, use_kernel: bool = True, group_size: int = 128
    ) -> None:
        super().__init__()
        self.qweight, self.scale, self.zero = quantize_int4(weight, group_size)
        self.group_size = group_size
        self.use_kernel = use_kernel
        if use_kernel:
            from swarmlab.engine.fast import kernels  # noqa: F401  (registers the ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_kernel and x.shape[0] == 1:
            return torch.ops.swarmlab.gemv_int4(x, self.qweight, self.scale, self.zero)
        return F.linear(x, self.dequantized().to(x.dtype))

    def dequantized(self) -> torch.Tensor:
        """The weight this layer multiplies by, [N, K] in the model dtype."""
        return dequantize_int4(self.qweight, self.scale, self.zero)


def int4_factory(group_size: int) -> LinearFactory:
    """A `swap_linears` factory for `Int4Linear` with a given group size."""

    def factory(weight: torch.Tensor, use_kernel: bool) -> nn.Module:
        return Int4Linear(weight, use_kernel, group_size)

    return factory


def int4_group_size(model: nn.Module, preferred: int = 128) -> int:
    """The largest power of two <= `preferred` that divides every swappable linear's K
    (128 on Gemma-4 E4B; 8 on the tiny test models, whose smallest K is 8)."""
    size = preferred
    for module in model.modules():
        if isinstance(module, nn.Linear | GemvLinear):
            while size > 2 and module.weight.shape[1] % size:
                size //= 2
    return size


def swap_linears(model: nn.Module, factory: LinearFactory, use_kernel: bool) -> int:
    """Replace every full-precision linear under `model` by `factory(weight, use_kernel)`."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear | GemvLinear):
                weight = child.weight.detach()
                setattr(parent, name, factory(weight, use_kernel))
                swapped += 1
    return swapped


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every matrix a decode step reads once (all linears, incl. int8 scales and
    int4 scales and offsets)."""
    total = 0
    for module in model.modules():
        for attribute in ("weight", "qweight", "scale", "zero"):
            tensor = getattr(module, attribute, None)
            if isinstance(tensor, torch.Tensor) and isinstance(
                module, nn.Linear | GemvLinear | Int8Linear | Int4Linear
            ):
                total += tensor.numel() * tensor.element_size()
    return total


def logit_error(reference: torch.Tensor, approx: torch.Tensor) -> dict[str, float]:
    """How far (quantized) logits [T, V] are from reference ones over the same positions:
    ||approx - reference|| / ||reference|| (float32, all positions) and top-1 agreement."""
    reference, approx = reference.float(), approx.float()
    relative = (approx - reference).norm() / reference.norm().clamp(min=1e-30)
    agreement = (approx.argmax(-1) == reference.argmax(-1)).float().mean()
    return {"relative_logit_error": float(relative), "top1_agreement": float(agreement)}
