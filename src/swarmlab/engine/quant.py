"""Swap the fast decoder's linear layers: Triton mat-vecs and weight-only int8.

As in gpt-fast, quantization and kernel choice are module swaps on a built `FastDecoder`:
every `nn.Linear` (the fused qkv and gate/up projections, o, down, the per-layer-embedding
projections and the lm_head) is replaced by a module with the same call signature. One-row
inputs (decode steps) go to the Triton kernel; wider inputs (prefill, verification) use a
plain matmul, dequantizing int8 weights on the fly.
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
    """Bytes of every matrix a decode step reads once (all linears, incl. int8 scales)."""
    total = 0
    for module in model.modules():
        for attribute in ("weight", "qweight", "scale"):
            tensor = getattr(module, attribute, None)
            if isinstance(tensor, torch.Tensor) and isinstance(
                module, nn.Linear | GemvLinear | Int8Linear
            ):
                total += tensor.numel() * tensor.element_size()
    return total
