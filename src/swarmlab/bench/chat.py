"""Turning a prompt into chat-templated token ids, client side, for decode capture.

Decode capture must send token ids (so that the candidate and the reference decode the very
same input), which means the harness applies the chat template itself. Two sources, chosen in
this order:

1. `local`: the checkpoint's own tokenizer and chat template, loaded with transformers'
   `AutoTokenizer` from the submission's model folder (when `model_id` is a local path), or
   from a folder given explicitly (`RunConfig.tokenizer`). Nothing is downloaded.
2. `server`: the endpoint's vLLM-style `POST /tokenize` with `messages` and
   `add_generation_prompt: true` (for hub-id submissions, whose weights the harness never
   fetches). An endpoint without it fails with an error saying how to fix it.

Both render the template as text, then tokenize it without adding special tokens (the
template already holds `<bos>`), as vLLM's chat path does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from swarmlab.bench.client import EndpointClient, require
from swarmlab.bench.errors import EndpointError, InputError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class ChatEncoder(Protocol):
    """Chat-templates one user prompt into token ids."""

    source: str

    def encode(self, prompt: str) -> list[int]:
        """Token ids of the templated conversation, generation prompt included."""
        ...


def has_tokenizer(folder: Path) -> bool:
    """Whether a folder holds tokenizer files."""
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


class LocalChatEncoder:
    """The checkpoint's tokenizer, read from a local folder through transformers."""

    def __init__(self, folder: Path) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:  # pragma: no cover - transformers is an engine extra
            raise InputError(
                "client-side chat templating needs transformers: pip install 'swarmlab[engine]'"
            ) from exc
        try:
            self._tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load the tokenizer in {folder}: {exc}") from exc
        if not getattr(self._tokenizer, "chat_template", None):
            raise InputError(f"the tokenizer in {folder} has no chat template; add one")
        self.source = f"local:{folder}"

    def encode(self, prompt: str) -> list[int]:
        """Render the template as text, then tokenize it without extra special tokens."""
        messages = [{"role": "user", "content": prompt}]
        text = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return [int(t) for t in self._tokenizer.encode(text, add_special_tokens=False)]


class ServerChatEncoder:
    """The endpoint's own `POST /tokenize` (vLLM's API), for submissions without local files."""

    source = "server:/tokenize"

    def __init__(self, client: EndpointClient) -> None:
        self._client = client

    def encode(self, prompt: str) -> list[int]:
        """Ask the server to template and tokenize the conversation."""
        payload = {
            "model": self._client.model,
            "messages": [{"role": "user", "content": prompt}],
            "add_generation_prompt": True,
        }
        try:
            body = self._client.post("/tokenize", payload).body
        except EndpointError as exc:
            raise EndpointError(
                f"{exc}. The harness needs the chat-templated prompt tokens: give the checkpoint "
                "as a local folder (model_id) or pass a tokenizer folder, or serve vLLM's "
                "POST /tokenize"
            ) from exc
        tokens = require(body, "tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise EndpointError("POST /tokenize must answer `tokens` as a list of integers")
        return tokens


def chat_encoder(tokenizer_dir: Path | None, client: EndpointClient) -> ChatEncoder:
    """A local encoder when a tokenizer folder is known, else the server's."""
    if tokenizer_dir is not None and has_tokenizer(tokenizer_dir):
        return LocalChatEncoder(tokenizer_dir)
    return ServerChatEncoder(client)
