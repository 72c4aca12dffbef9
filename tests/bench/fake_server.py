"""A small OpenAI-compatible server for harness tests, standard library only, run as a process.

It "decodes" with a deterministic toy rule, so runs are reproducible, and misbehaves on demand
through `FAKE_MODE` (the fault tests):

- `ok` (default): follows the endpoint contract, including vLLM's `POST /tokenize`.
- `crash`: prints an error and exits at start.
- `never_ready`: answers `GET /v1/models` with 503 forever.
- `hang_after:N`: answers N POSTs, then never answers again.
- `exit_after:N`: answers N POSTs, then the process dies in the middle of the next one.
- `diverge_once`: changes one generated token in the first token-id completion.
- `no_token_ids`, `no_prompt_logprobs`, `no_usage`, `no_tokenize`: omit that part of the contract.

Usage: python fake_server.py   (port from $PORT, model name from $SERVED_MODEL_NAME)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODE = os.environ.get("FAKE_MODE", "ok")
MODEL = os.environ.get("SERVED_MODEL_NAME", "fake-model")
VOCAB = 997
_lock = threading.Lock()
_posts = 0
_diverged = False


def chat_tokens(prompt: str) -> list[int]:
    """A toy chat template: bos, turn start, one id per character, turn end, model turn."""
    return [2, 105, *(3 + ord(c) % VOCAB for c in prompt), 106, 107]


def greedy(prompt: list[int], max_tokens: int) -> list[int]:
    """A deterministic next-token rule standing in for a model."""
    tokens = list(prompt)
    for _ in range(max_tokens):
        tokens.append(3 + (sum(tokens[-3:]) * 31 + len(tokens)) % VOCAB)
    return tokens[len(prompt) :]


def logprob(token: int, position: int) -> float:
    return -0.2 - ((token + position) % 13) / 10


def completion(body: dict[str, Any]) -> dict[str, Any]:
    global _diverged
    prompt = body["prompt"]
    generated = greedy(prompt, int(body.get("max_tokens", 16)))
    if MODE == "diverge_once" and body.get("return_token_ids") and not _diverged:
        _diverged = True
        generated[min(2, len(generated) - 1)] += 1
    choice: dict[str, Any] = {"index": 0, "text": " ".join(f"t{t}" for t in generated)}
    if body.get("return_token_ids") and MODE != "no_token_ids":
        choice["token_ids"] = generated
    if body.get("prompt_logprobs") and MODE != "no_prompt_logprobs":
        choice["prompt_logprobs"] = [None] + [
            {str(t): {"logprob": logprob(t, i), "rank": 1}} for i, t in enumerate(prompt) if i
        ]
    return {"object": "text_completion", "choices": [choice], "usage": usage(prompt, generated)}


def chat(body: dict[str, Any]) -> dict[str, Any]:
    prompt = chat_tokens(body["messages"][-1]["content"])
    generated = greedy(prompt, int(body.get("max_tokens", 16)))
    answer = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "usage": usage(prompt, generated),
    }
    if MODE == "no_usage":
        del answer["usage"]
    return answer


def usage(prompt: list[int], generated: list[int]) -> dict[str, int]:
    return {
        "prompt_tokens": len(prompt),
        "completion_tokens": len(generated),
        "total_tokens": len(prompt) + len(generated),
    }


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/v1/models":
            return self.reply(404, {"error": "not found"})
        if MODE == "never_ready":
            return self.reply(503, {"error": "loading"})
        self.reply(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        global _posts
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with _lock:
            _posts += 1
            count = _posts
        if MODE.startswith("hang_after:") and count > int(MODE.split(":")[1]):
            print(f"fake: hanging on POST {self.path}", flush=True)
            while True:
                time.sleep(3600)
        if MODE.startswith("exit_after:") and count > int(MODE.split(":")[1]):
            print(f"fake: dying during POST {self.path}", flush=True)
            os._exit(1)
        routes = {"/v1/completions": completion, "/v1/chat/completions": chat}
        if self.path == "/tokenize" and MODE != "no_tokenize":
            tokens = chat_tokens(body["messages"][-1]["content"])
            return self.reply(200, {"tokens": tokens, "count": len(tokens)})
        if self.path not in routes:
            return self.reply(404, {"error": f"no route {self.path}"})
        self.reply(200, routes[self.path](body))

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"fake: {format % args}", flush=True)


def main() -> None:
    if MODE == "crash":
        print("fake: RuntimeError: CUDA out of memory (simulated crash at start)", flush=True)
        sys.exit(3)
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"fake: serving {MODEL} on 127.0.0.1:{port} mode={MODE}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
