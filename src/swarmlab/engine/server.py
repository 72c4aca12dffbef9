"""The OpenAI-compatible HTTP server, on the standard library alone.

GPU machines have no FastAPI or uvicorn, so this is `http.server.ThreadingHTTPServer` with
JSON written by hand. Routes: `GET /v1/models`, `POST /v1/completions`,
`POST /v1/chat/completions`, vLLM's `POST /tokenize` and `POST /detokenize` (and `GET /health`). HTTP/1.1 keep-alive is on, so a benchmark
client pays for one TCP connection, not one per request. The model is loaded before the port
is bound: once `GET /v1/models` answers, the server is ready. SIGTERM and SIGINT stop it
gracefully: no new requests, and the one being generated is allowed to finish.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from swarmlab.engine.protocol import (
    InvalidRequestError,
    parse_chat,
    parse_completion,
    parse_detokenize,
    parse_json_object,
    parse_tokenize,
)
from swarmlab.engine.service import CompletionService, ModelLimits

MAX_BODY_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 30.0


@dataclass(frozen=True)
class ServeOptions:
    """Everything `swarmlab engine serve` takes."""

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "cpu"
    dtype: str = "float32"
    served_model_name: str | None = None
    backend: str = "reference"
    threads: int | None = None


class ServeError(Exception):
    """The server cannot start listening (port taken, address not available)."""


class EngineHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the completion service its handlers call."""

    daemon_threads = True  # idle keep-alive connections must not hold up shutdown

    def __init__(self, address: tuple[str, int], service: CompletionService) -> None:
        super().__init__(address, EngineRequestHandler)
        self.service = service
        self._active = 0
        self._idle = threading.Condition()

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Count a request as in flight until its response is written."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)


class EngineRequestHandler(BaseHTTPRequestHandler):
    """Routes requests to the service and renders every outcome as JSON."""

    protocol_version = "HTTP/1.1"
    server_version = "swarmlab-engine"
    server: EngineHTTPServer

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_error(self, error: InvalidRequestError) -> None:
        self._send_json(error.status, error.body())

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True  # a body of unknown size may follow (e.g. chunked)
            raise InvalidRequestError(
                "send a Content-Length header with the JSON body", code="invalid_json"
            )
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would be taken for the next request
            raise InvalidRequestError(
                f"the body is over {MAX_BODY_BYTES} bytes", code="body_too_large", status=413
            )
        return self.rfile.read(int(length))

    def _not_found(self) -> None:
        self._send_error(
            InvalidRequestError(
                f"no route {self.command} {self.path}", code="not_found", status=404
            )
        )

    def _discard_body(self) -> None:
        """Read away a body nobody asked for: left unread, it would be parsed as the next
        request on this keep-alive connection."""
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def do_GET(self) -> None:
        """`GET /v1/models` and `GET /health`."""
        self._discard_body()
        if self.path == "/v1/models":
            self._send_json(HTTPStatus.OK, self.server.service.models())
        elif self.path == "/health":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        else:
            self._not_found()

    def do_POST(self) -> None:
        """Completions, chat completions, tokenize and detokenize."""
        service = self.server.service
        routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/v1/completions": lambda body: service.complete(parse_completion(body)),
            "/v1/chat/completions": lambda body: service.chat(parse_chat(body)),
            "/tokenize": lambda body: service.tokenize(parse_tokenize(body)),
            "/detokenize": lambda body: service.detokenize(*parse_detokenize(body)),
        }
        route = routes.get(self.path)
        try:
            body = self._read_body()
            if route is None:
                self._not_found()
                return
            with self.server.tracking():
                self._send_json(HTTPStatus.OK, route(parse_json_object(body)))
        except InvalidRequestError as error:
            self._send_error(error)
        except ConnectionError:  # the client went away before its answer: nobody to tell
            self.log_message("client disconnected before the response was sent")
            self.close_connection = True
        except Exception as exc:  # a backend failure: log it, answer 500 in the same shape
            traceback.print_exc(file=sys.stderr)
            self._send_json(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {
                    "error": {
                        "message": f"internal error: {exc}",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
            )

    def _method_not_allowed(self) -> None:
        self._discard_body()
        message = f"{self.command} is not allowed here: use GET /v1/models or POST /v1/completions, /v1/chat/completions"
        self._send_error(InvalidRequestError(message, code="method_not_allowed", status=405))

    do_PUT = do_DELETE = do_PATCH = _method_not_allowed

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"[engine] {self.address_string()} {format % args}\n")


def build_service(options: ServeOptions) -> CompletionService:
    """Load the tokenizer, limits and backend for `options`."""
    from swarmlab.engine.backend import BackendOptions, create_backend
    from swarmlab.engine.loading import (
        load_config,
        load_tokenizer,
        read_generation_stop_ids,
        text_config,
    )

    if options.threads is not None:
        import torch

        torch.set_num_threads(options.threads)
    config = text_config(load_config(options.model_dir))
    tokenizer = load_tokenizer(options.model_dir)
    backend = create_backend(
        options.backend, BackendOptions(options.model_dir, options.device, options.dtype)
    )
    # A backend with a pre-allocated cache (fast) may hold fewer positions than the model.
    backend_context = getattr(backend, "max_context", config.max_position_embeddings)
    limits = ModelLimits(
        vocab_size=config.vocab_size,
        max_context=min(config.max_position_embeddings, backend_context),
        stop_ids=frozenset(read_generation_stop_ids(options.model_dir, config, tokenizer)),
    )
    name = options.served_model_name or options.model_dir.name
    return CompletionService(backend, tokenizer, name, limits)


def _stop_on_signals(server: EngineHTTPServer) -> None:
    """SIGTERM/SIGINT: stop accepting requests. `shutdown` waits for the serving loop, which
    runs in this (the main) thread, so it must be called from another thread."""

    def stop(signum: int, _frame: object) -> None:
        sys.stderr.write(f"[engine] {signal.Signals(signum).name}: shutting down\n")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def serve(options: ServeOptions, on_ready: Callable[[str], None] | None = None) -> None:
    """Load the model, then serve until SIGTERM or SIGINT."""
    service = build_service(options)
    try:
        server = EngineHTTPServer((options.host, options.port), service)
    except OSError as exc:
        raise ServeError(
            f"cannot listen on {options.host}:{options.port} ({exc.strerror}): pass another --port or --host"
        ) from exc
    _stop_on_signals(server)
    host, port = server.server_address[:2]
    url = f"http://{host!s}:{port}"
    if on_ready is not None:
        on_ready(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        # Let a request in flight finish (its client gets its answer) before exiting.
        if not server.drain(DRAIN_SECONDS):
            sys.stderr.write(
                f"[engine] a request was still running after {DRAIN_SECONDS:.0f} s; exiting anyway\n"
            )
