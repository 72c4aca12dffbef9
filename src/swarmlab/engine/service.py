"""The completion service: tokenizer and chat template in front of a backend.

It turns validated requests into token ids, checks them against the model (vocabulary,
context length, model name), runs the backend under a lock (the challenge is single-stream,
and a backend may keep one pre-allocated cache), and builds OpenAI-shaped responses. It knows
nothing of HTTP, so tests and other front ends can call it directly.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from swarmlab.engine.protocol import (
    ChatRequest,
    CompletionRequest,
    InvalidRequestError,
    TokenizeRequest,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from swarmlab.engine.backend import Backend


@dataclass(frozen=True)
class ModelLimits:
    """What requests are checked against: the model's vocabulary, context and stop tokens."""

    vocab_size: int
    max_context: int
    stop_ids: frozenset[int]


@dataclass(frozen=True)
class Generation:
    """One finished generation, before it is shaped into a response."""

    prompt_ids: list[int]
    token_ids: list[int]
    finish_reason: str


class CompletionService:
    """Serves completions and chat completions for one model, one request at a time."""

    def __init__(
        self,
        backend: Backend,
        tokenizer: PreTrainedTokenizerBase,
        model_name: str,
        limits: ModelLimits,
    ) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.limits = limits
        self.lock = threading.Lock()
        self.created = int(time.time())

    def models(self) -> dict[str, Any]:
        """The `GET /v1/models` body."""
        card = {
            "id": self.model_name,
            "object": "model",
            "created": self.created,
            "owned_by": "swarmlab",
            "max_model_len": self.limits.max_context,
        }
        return {"object": "list", "data": [card]}

    def _check_model(self, model: str | None) -> None:
        if model is not None and model != self.model_name:
            raise InvalidRequestError(
                f"model {model!r} is not served here: send model {self.model_name!r} (see GET /v1/models)",
                "model",
                "model_not_found",
            )

    def _check_ids(self, ids: list[int], param: str = "prompt") -> None:
        bad = next((t for t in ids if not 0 <= t < self.limits.vocab_size), None)
        if bad is not None:
            raise InvalidRequestError(
                f"token id {bad} is outside the vocabulary [0, {self.limits.vocab_size}): send ids the model's tokenizer produced",
                param,
            )

    def _budget(self, prompt_len: int, max_tokens: int | None) -> int:
        """`max_tokens`, checked to fit the context; None means all the room that is left."""
        room = self.limits.max_context - prompt_len
        if room < 0:
            raise InvalidRequestError(
                f"the prompt has {prompt_len} tokens, more than the model's context of {self.limits.max_context}: shorten it",
                "prompt",
                "context_length_exceeded",
            )
        if max_tokens is not None and max_tokens > room:
            raise InvalidRequestError(
                f"prompt ({prompt_len} tokens) + max_tokens ({max_tokens}) exceeds the model's context of "
                f"{self.limits.max_context} tokens: lower max_tokens to at most {room}",
                "max_tokens",
                "context_length_exceeded",
            )
        return room if max_tokens is None else max_tokens

    def _generate(self, prompt_ids: list[int], max_tokens: int, ignore_eos: bool) -> Generation:
        stop_ids = None if ignore_eos else set(self.limits.stop_ids)
        with self.lock:
            token_ids = (
                self.backend.generate(prompt_ids, max_tokens, stop_ids) if max_tokens else []
            )
        stopped = bool(token_ids) and stop_ids is not None and token_ids[-1] in stop_ids
        return Generation(prompt_ids, token_ids, "stop" if stopped else "length")

    def _text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _envelope(
        self, kind: str, choice: dict[str, Any], generation: Generation
    ) -> dict[str, Any]:
        prompt_tokens, completion_tokens = len(generation.prompt_ids), len(generation.token_ids)
        prefix, obj = (
            ("chatcmpl", "chat.completion") if kind == "chat" else ("cmpl", "text_completion")
        )
        return {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "object": obj,
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _prompt_ids(self, request: CompletionRequest) -> list[int]:
        if isinstance(request.prompt, list):
            self._check_ids(request.prompt)
            return list(request.prompt)
        ids = self._encode(request.prompt, request.add_special_tokens)
        if not ids:
            raise InvalidRequestError("the prompt tokenizes to no tokens: send some text", "prompt")
        return ids

    def _logprob_entries(self, prompt_ids: list[int], top: int) -> list[dict[str, Any] | None]:
        """OpenAI/vLLM `prompt_logprobs`: entry i maps token ids (as strings) to their logprob
        given the tokens before i; entry 0 is null. `top` 1 adds the top-1 token."""
        with self.lock:
            raw = self.backend.prompt_logprobs(prompt_ids)
        if len(raw) != len(prompt_ids) or any(
            scores is None or actual not in scores
            for scores, actual in zip(raw[1:], prompt_ids[1:], strict=True)
        ):
            raise RuntimeError("the backend's prompt_logprobs do not cover every prompt token")
        kept = [
            scores if top else {actual: scores[actual]}
            for scores, actual in zip(raw[1:], prompt_ids[1:], strict=True)
            if scores is not None
        ]
        ids = sorted({t for scores in kept for t in scores})
        text = dict(zip(ids, self.tokenizer.batch_decode([[t] for t in ids]), strict=True))
        entries: list[dict[str, Any] | None] = [None]
        for scores in kept:
            entries.append(
                {str(t): {"logprob": lp, "decoded_token": text[t]} for t, lp in scores.items()}
            )
        return entries

    def complete(self, request: CompletionRequest) -> dict[str, Any]:
        """The `POST /v1/completions` body for a validated request."""
        self._check_model(request.model)
        prompt_ids = self._prompt_ids(request)
        generation = self._generate(
            prompt_ids, self._budget(len(prompt_ids), request.max_tokens), request.ignore_eos
        )
        choice: dict[str, Any] = {
            "index": 0,
            "text": self._text(generation.token_ids),
            "logprobs": None,
            "finish_reason": generation.finish_reason,
        }
        if request.return_token_ids:
            choice["prompt_token_ids"] = prompt_ids
            choice["token_ids"] = generation.token_ids
        if request.prompt_logprobs is not None:
            choice["prompt_logprobs"] = self._logprob_entries(prompt_ids, request.prompt_logprobs)
        return self._envelope("completion", choice, generation)

    def _render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        from jinja2 import TemplateError

        try:
            return str(
                self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=add_generation_prompt, tokenize=False
                )
            )
        except TemplateError as exc:
            raise InvalidRequestError(
                f"the chat template rejected these messages: {exc}", "messages"
            ) from exc

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return [
            int(t) for t in self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        ]

    def _chat_ids(self, request: ChatRequest) -> list[int]:
        # The template already writes <bos>; adding special tokens again would double it.
        return self._encode(self._render_chat(request.messages, True), add_special_tokens=False)

    def chat(self, request: ChatRequest) -> dict[str, Any]:
        """The `POST /v1/chat/completions` body for a validated request."""
        self._check_model(request.model)
        prompt_ids = self._chat_ids(request)
        generation = self._generate(
            prompt_ids, self._budget(len(prompt_ids), request.max_tokens), request.ignore_eos
        )
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": self._text(generation.token_ids)},
            "logprobs": None,
            "finish_reason": generation.finish_reason,
        }
        if request.return_token_ids:
            choice["prompt_token_ids"] = prompt_ids
            choice["token_ids"] = generation.token_ids
        return self._envelope("chat", choice, generation)

    def tokenize(self, request: TokenizeRequest) -> dict[str, Any]:
        """The `POST /tokenize` body (vLLM's shape: count, max_model_len, tokens)."""
        self._check_model(request.model)
        if request.messages is not None:
            text = self._render_chat(request.messages, request.add_generation_prompt)
        else:
            text = request.prompt or ""
        tokens = self._encode(text, request.add_special_tokens)
        return {"count": len(tokens), "max_model_len": self.limits.max_context, "tokens": tokens}

    def detokenize(self, tokens: list[int], model: str | None) -> dict[str, Any]:
        """The `POST /detokenize` body: the text of `tokens`, special tokens included."""
        self._check_model(model)
        self._check_ids(tokens, "tokens")
        return {"prompt": str(self.tokenizer.decode(tokens))}
