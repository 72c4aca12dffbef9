"""The OpenAI-compatible request shapes this engine accepts, validated by hand.

The GPU machines have no pydantic, so requests are checked here field by field. Every problem
raises `InvalidRequestError`, which the server renders as OpenAI's error body with status 400:
`{"error": {"message", "type": "invalid_request_error", "param", "code"}}`. Fields this engine
does not know are ignored, as OpenAI-compatible servers do; fields it knows but cannot honour
(sampling, streaming, several choices, stop strings) are refused with a message saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")


class InvalidRequestError(Exception):
    """The request is malformed or asks for something this engine does not do (HTTP 400)."""

    def __init__(
        self, message: str, param: str | None = None, code: str = "invalid_value", status: int = 400
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status

    def body(self) -> dict[str, Any]:
        """The OpenAI error body."""
        return {
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class CompletionRequest:
    """`POST /v1/completions`: one prompt, as text or as token ids."""

    prompt: str | list[int]
    max_tokens: int
    model: str | None = None
    add_special_tokens: bool = True
    ignore_eos: bool = False
    return_token_ids: bool = False
    prompt_logprobs: int | None = None


@dataclass(frozen=True)
class ChatRequest:
    """`POST /v1/chat/completions`: messages rendered by the checkpoint's chat template."""

    messages: list[dict[str, str]]
    max_tokens: int | None
    model: str | None = None
    ignore_eos: bool = False
    return_token_ids: bool = False


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError(
            f"the body is not valid JSON ({exc}): send a JSON object", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object", code="invalid_json")
    return body


def _typed(body: dict[str, Any], name: str, kinds: tuple[type, ...], what: str) -> Any:
    """`body[name]` if present and not null, checked to be one of `kinds` (a bool is never
    accepted as a number, although Python says it is an int)."""
    value = body.get(name)
    if value is None:
        return None
    is_bool = isinstance(value, bool)
    if not isinstance(value, kinds) or (is_bool and bool not in kinds):
        raise InvalidRequestError(
            f"{name} must be {what}, got {json.dumps(value)[:80]}", name, "invalid_type"
        )
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    return bool(_typed(body, name, (bool,), "true or false"))


def _max_tokens(body: dict[str, Any], name: str) -> int | None:
    value = _typed(body, name, (int,), "an integer")
    if value is not None and value < 0:
        raise InvalidRequestError(f"{name} must be 0 or more, got {value}", name)
    return value


# Fields this engine knows but cannot honour: the values it accepts, and what to send instead.
_UNSUPPORTED: dict[str, tuple[tuple[Any, ...], str]] = {
    "temperature": (
        (None, 0),
        "this engine decodes greedily only: send temperature 0 (or leave it out)",
    ),
    "n": ((None, 1), "this engine returns one choice: send n 1 (or leave it out)"),
    "stream": ((None, False), "streaming is not supported: send stream false"),
    "stop": (
        (None, [], ""),
        "stop strings are not supported: leave stop out (generation stops at EOS)",
    ),
    "logprobs": ((None, False, 0), "completion logprobs are not supported: use prompt_logprobs"),
}


def _refuse_unsupported(body: dict[str, Any]) -> None:
    """Greedy, single-choice, non-streaming only: say so rather than silently ignore."""
    _typed(body, "temperature", (int, float), "a number")
    _typed(body, "n", (int,), "an integer")
    _typed(body, "stream", (bool,), "true or false")
    for name, (accepted, message) in _UNSUPPORTED.items():
        if body.get(name) not in accepted:
            raise InvalidRequestError(message, name, "unsupported")


def _model(body: dict[str, Any]) -> str | None:
    return _typed(body, "model", (str,), "a string")


def _prompt(body: dict[str, Any]) -> str | list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
        raise InvalidRequestError(
            "one prompt per request: send prompt as a string or a list of token ids", "prompt"
        )
    raise InvalidRequestError(
        "prompt must be a non-empty string or a non-empty list of integer token ids", "prompt"
    )


def _prompt_logprobs(body: dict[str, Any]) -> int | None:
    value = _typed(body, "prompt_logprobs", (int,), "an integer")
    if value is not None and value not in (0, 1):
        raise InvalidRequestError(
            "prompt_logprobs must be 0 (the actual token) or 1 (plus the top-1 token)",
            "prompt_logprobs",
            "unsupported",
        )
    return value


def parse_completion(body: dict[str, Any]) -> CompletionRequest:
    """Validate a `/v1/completions` body. `max_tokens` defaults to 16, as in OpenAI's API."""
    _refuse_unsupported(body)
    add_special = _typed(body, "add_special_tokens", (bool,), "true or false")
    max_tokens = _max_tokens(body, "max_tokens")
    return CompletionRequest(
        prompt=_prompt(body),
        max_tokens=16 if max_tokens is None else max_tokens,
        model=_model(body),
        add_special_tokens=True if add_special is None else add_special,
        ignore_eos=_flag(body, "ignore_eos"),
        return_token_ids=_flag(body, "return_token_ids"),
        prompt_logprobs=_prompt_logprobs(body),
    )


def _message_content(content: Any, index: int) -> str:
    """A message's text: a string, or OpenAI's list of `{"type": "text", "text": ...}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    raise InvalidRequestError(
        f"messages[{index}].content must be a string or a list of text parts (this engine serves text only)",
        f"messages[{index}].content",
    )


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError(
            "messages must be a non-empty list of {role, content} objects", "messages"
        )
    parsed = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise InvalidRequestError(
                f"messages[{index}].role must be one of {', '.join(ROLES)}",
                f"messages[{index}].role",
            )
        parsed.append({"role": role, "content": _message_content(message.get("content"), index)})
    return parsed


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    """Validate a `/v1/chat/completions` body. `max_tokens` (or `max_completion_tokens`) left
    out means: as many as the context allows, as vLLM does."""
    _refuse_unsupported(body)
    max_tokens = _max_tokens(body, "max_tokens")
    if max_tokens is None:
        max_tokens = _max_tokens(body, "max_completion_tokens")
    return ChatRequest(
        messages=_messages(body),
        max_tokens=max_tokens,
        model=_model(body),
        ignore_eos=_flag(body, "ignore_eos"),
        return_token_ids=_flag(body, "return_token_ids"),
    )


@dataclass(frozen=True)
class TokenizeRequest:
    """vLLM's `POST /tokenize`: a text prompt, or messages to render with the chat template."""

    prompt: str | None
    messages: list[dict[str, str]] | None
    add_special_tokens: bool
    add_generation_prompt: bool
    model: str | None = None


def _optional_flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = _typed(body, name, (bool,), "true or false")
    return default if value is None else bool(value)


def parse_tokenize(body: dict[str, Any]) -> TokenizeRequest:
    """Validate a `/tokenize` body. As in vLLM, a text prompt gets special tokens by default
    and messages do not (their template writes `<bos>`), and messages get the generation
    prompt by default."""
    if "messages" in body:
        return TokenizeRequest(
            prompt=None,
            messages=_messages(body),
            add_special_tokens=_optional_flag(body, "add_special_tokens", False),
            add_generation_prompt=_optional_flag(body, "add_generation_prompt", True),
            model=_model(body),
        )
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidRequestError("send prompt (a string) or messages to tokenize", "prompt")
    return TokenizeRequest(
        prompt=prompt,
        messages=None,
        add_special_tokens=_optional_flag(body, "add_special_tokens", True),
        add_generation_prompt=False,
        model=_model(body),
    )


def parse_detokenize(body: dict[str, Any]) -> tuple[list[int], str | None]:
    """Validate a `/detokenize` body: the token ids and the optional model name."""
    tokens = body.get("tokens")
    if not isinstance(tokens, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in tokens
    ):
        raise InvalidRequestError("tokens must be a list of integer token ids", "tokens")
    return tokens, _model(body)
