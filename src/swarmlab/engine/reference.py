"""The reference backend: transformers' own Gemma-4 model, plain greedy decoding.

The model is `Gemma4ForCausalLM` for a text checkpoint, `Gemma4ForConditionalGeneration` (fed
text only) for Google's multimodal release; both take the same arguments here.

This is what greedy-identity checks compare against, so it does the simplest correct thing:
one forward pass over the whole prompt (as `generate` does), then one token at a time through a
`DynamicCache`, taking the argmax each step. No sampling, no batching, no speculation.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from swarmlab.engine.backend import DEFAULT_PREFILL_CHUNK, BackendOptions, register_backend
from swarmlab.engine.loading import load_model
from swarmlab.engine.logprobs import chunk_entries

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _cache_kwarg(model: PreTrainedModel) -> str:
    """transformers 5.24 renamed `past_key_values` to `cache` (the old name warns); GPU
    machines may run an earlier 5.x, so use whichever name this release's forward takes."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class ReferenceBackend:
    """Greedy decoding and prompt scoring with transformers' own Gemma-4 implementation."""

    def __init__(self, model: PreTrainedModel, prefill_chunk: int = DEFAULT_PREFILL_CHUNK) -> None:
        if prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be at least 1, got {prefill_chunk}")
        self.model = model
        self.prefill_chunk = prefill_chunk
        self._device = model.device
        self._cache_kwarg = _cache_kwarg(model)

    @classmethod
    def from_options(cls, options: BackendOptions) -> ReferenceBackend:
        """Load the checkpoint named in `options` (the registry's factory)."""
        return cls(
            load_model(options.model_dir, options.device, options.dtype), options.prefill_chunk
        )

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def _logits(self, ids: list[int], cache: Any, logits_to_keep: int) -> torch.Tensor:
        """Feed `ids` after what `cache` holds; logits of the last `logits_to_keep` positions
        (0 = all), shape (len, vocab)."""
        input_ids = torch.tensor([ids], dtype=torch.long, device=self._device)
        kwargs = {self._cache_kwarg: cache}
        out = self.model(
            input_ids=input_ids, use_cache=True, logits_to_keep=logits_to_keep, **kwargs
        )
        return out.logits[0]

    @torch.inference_mode()
    def generate(
        self, prompt_ids: list[int], max_tokens: int, stop_ids: set[int] | None
    ) -> list[int]:
        """Greedy continuation; see `Backend.generate`."""
        if not prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        stop_ids = stop_ids or set()
        cache = self._new_cache()
        generated: list[int] = []
        logits = self._logits(prompt_ids, cache, logits_to_keep=1)
        while len(generated) < max_tokens:
            token = int(logits[-1].argmax())
            generated.append(token)
            if token in stop_ids or len(generated) == max_tokens:
                break
            logits = self._logits([token], cache, logits_to_keep=1)
        return generated

    @torch.inference_mode()
    def prompt_logprobs(self, prompt_ids: list[int]) -> list[dict[int, float] | None]:
        """Teacher-forced log-probabilities in chunks of `prefill_chunk`; see
        `Backend.prompt_logprobs`. The last prompt token is never fed: nothing in the prompt
        follows it."""
        entries: list[dict[int, float] | None] = [None]
        cache = self._new_cache()
        scored = len(prompt_ids) - 1
        for start in range(0, scored, self.prefill_chunk):
            stop = min(start + self.prefill_chunk, scored)
            logits = self._logits(prompt_ids[start:stop], cache, 0)
            entries.extend(chunk_entries(logits, prompt_ids[start + 1 : stop + 1]))
        return entries


register_backend("reference", ReferenceBackend.from_options)
