"""The server as a real process: the CLI entry point, readiness, signals, fail-fast errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch
from tests.fixtures.models import engine_server, stop_process

from swarmlab.engine.reference import ReferenceBackend

pytestmark = pytest.mark.slow


def test_the_reference_server_fixture_serves_the_tiny_model(reference_server: str) -> None:
    assert httpx.get(f"{reference_server}/v1/models").json()["data"][0]["id"] == "tiny"
    body = {"prompt": [2, 45, 322], "max_tokens": 4, "ignore_eos": True, "return_token_ids": True}
    response = httpx.post(f"{reference_server}/v1/completions", json=body, timeout=60.0)
    assert len(response.json()["choices"][0]["token_ids"]) == 4


def _send_and_hang_up(url: str, body: bytes) -> None:
    """Send a request on a raw socket and close it before the answer comes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)


def test_clients_that_hang_up_and_sigterm_are_handled_cleanly(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with engine_server(tiny_model_dir, "--threads", "1", log=log) as (url, process):
        _send_and_hang_up(url, b'{"prompt": "Hi", "max_tokens": 200, "ignore_eos": true}')
        body = {"prompt": "Hi", "max_tokens": 2, "ignore_eos": True}
        response = httpx.post(f"{url}/v1/completions", json=body, timeout=60.0)
        assert response.json()["usage"]["completion_tokens"] == 2
        assert stop_process(process) == 0
    text = log.read_text()
    assert "SIGTERM: shutting down" in text
    assert "Traceback" not in text


def test_a_bad_model_directory_fails_fast_with_the_fix(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swarmlab.engine", "serve", "--model", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "lacks config.json" in result.stderr and "make-tiny" in result.stderr


def test_an_unknown_backend_fails_fast(tiny_model_dir: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmlab.engine",
            "serve",
            "--model",
            str(tiny_model_dir),
            "--backend",
            "nope",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no backend named 'nope'" in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_serves_on_cuda_in_bfloat16(tiny_model_dir: Path, tmp_path: Path) -> None:
    from swarmlab.engine.backend import BackendOptions

    gpu = ReferenceBackend.from_options(BackendOptions(tiny_model_dir, "cuda", "bfloat16"))
    prompt = [2, 45, 322, 81, 84, 266, 273, 81, 73] * 4
    args = ("--device", "cuda", "--dtype", "bfloat16")
    with engine_server(tiny_model_dir, *args, log=tmp_path / "server.log") as (url, _process):
        body = {"prompt": prompt, "max_tokens": 32, "ignore_eos": True, "return_token_ids": True}
        response = httpx.post(f"{url}/v1/completions", json=body, timeout=60.0)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["token_ids"] == gpu.generate(prompt, 32, None)
