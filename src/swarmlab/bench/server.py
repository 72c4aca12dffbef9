"""Launching a submission's server, waiting until it is ready, and always tearing it down.

The server runs in its own process group (so teardown reaches every child it spawns: vLLM
forks engine workers), with cwd = the submission folder and the manifest's `env` on top of
the harness's environment, plus `MODEL_ID`, `SERVED_MODEL_NAME` and `PORT` for serve scripts
that read them. Readiness is `GET /v1/models` answering 200, polled every `poll_interval_s`
up to `ready_timeout_s`; the process exiting meanwhile fails at once with its log tail.
Teardown: SIGTERM to the group, then SIGKILL after `grace_s`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from swarmlab.bench.errors import ServerExitedError, ServerNotReadyError
from swarmlab.bench.manifest import PYTHON_NAMES, Manifest
from swarmlab.bench.runlog import RunLog, pump

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServerSpec:
    """How to start and wait for one server."""

    argv: Sequence[str]
    cwd: Path
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 900.0
    poll_interval_s: float = 5.0
    grace_s: float = 10.0

    @property
    def base_url(self) -> str:
        """Where the OpenAI-compatible API lives."""
        return f"http://{HOST}:{self.port}"


def launch_spec(
    manifest: Manifest,
    submission: Path,
    python: Path,
    *,
    port: int | None = None,
    ready_timeout_s: float = 900.0,
    poll_interval_s: float = 5.0,
    grace_s: float = 10.0,
) -> ServerSpec:
    """How to start a submission: `python` swapped in, the contract's variables under `env`."""
    port = port or manifest.port
    argv = list(manifest.serve)
    if argv[0] in PYTHON_NAMES:
        argv[0] = str(python)
    model = (
        str((submission / manifest.model_id).resolve())
        if manifest.model_is_local
        else manifest.model_id
    )
    env = {
        "MODEL_ID": model,
        "SERVED_MODEL_NAME": manifest.model_name,
        "PORT": str(port),
        "PATH": os.pathsep.join([str(python.parent), os.environ.get("PATH", "")]),
        **manifest.env,
    }
    return ServerSpec(
        argv=argv,
        cwd=submission.resolve(),
        port=port,
        env=env,
        ready_timeout_s=ready_timeout_s,
        poll_interval_s=poll_interval_s,
        grace_s=grace_s,
    )


@dataclass(frozen=True)
class ReadyInfo:
    """What server.json records about readiness."""

    ready_s: float
    models: Any


class ServerProcess:
    """One running server; a context manager that always stops it."""

    def __init__(self, spec: ServerSpec, log: RunLog) -> None:
        self.spec = spec
        self.log = log
        self._proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None
        self._stop_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The server's process id (and process group id) once started."""
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Spawn the server; its output goes to the run log prefixed `[server]`."""
        env = {**os.environ, **self.spec.env, "PYTHONUNBUFFERED": "1"}
        self.log.info(f"starting server: {' '.join(self.spec.argv)} (cwd {self.spec.cwd})")
        try:
            self._proc = subprocess.Popen(
                list(self.spec.argv),
                cwd=self.spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerExitedError(
                f"could not start the server command {list(self.spec.argv)}: {exc}; "
                "fix `serve` in manifest.json"
            ) from exc
        assert self._proc.stdout is not None
        self._pump = pump(self._proc.stdout, self.log, "server")

    def wait_ready(self) -> ReadyInfo:
        """Poll `GET /v1/models` until 200; raise if the process exits or time runs out."""
        started = time.monotonic()
        deadline = started + self.spec.ready_timeout_s
        with httpx.Client(base_url=self.spec.base_url) as http:
            while True:
                self.check_alive("while starting")
                models = _probe(http, min(5.0, self.spec.poll_interval_s + 1))
                if models is not None:
                    ready_s = time.monotonic() - started
                    self.log.info(f"server ready after {ready_s:.1f} s")
                    return ReadyInfo(ready_s, models)
                if time.monotonic() >= deadline:
                    raise ServerNotReadyError(
                        f"the server did not answer GET {self.spec.base_url}/v1/models with 200 "
                        f"within {self.spec.ready_timeout_s:g} s; check that serve.py listens on "
                        f"{HOST}:{self.spec.port} (manifest `port`), see server.log. "
                        f"Last output:\n{self.log.tail()}"
                    )
                self._wait_exit(min(self.spec.poll_interval_s, deadline - time.monotonic()))

    def check_alive(self, when: str, wait_s: float = 0.0) -> None:
        """Raise ServerExitedError, quoting the log tail, if the process has exited (or exits
        within `wait_s`: a dropped connection usually comes a moment before the exit status)."""
        if self._proc is None:
            raise ServerExitedError("the server was never started")
        if wait_s > 0:
            self._wait_exit(wait_s)
        code = self._proc.poll()
        if code is not None:
            if self._pump:
                self._pump.join(timeout=2)
            raise ServerExitedError(
                f"the server process exited with code {code} {when}; fix the error below and "
                f"resubmit (full output in server.log). Last output:\n{self.log.tail()}"
            )

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after the grace period; safe to call twice."""
        with self._stop_lock:
            proc = self._proc
            if proc is None or proc.returncode is not None:
                return
            self.log.info("stopping server (SIGTERM)")
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.spec.grace_s)
            except subprocess.TimeoutExpired:
                self.log.info(f"server still alive after {self.spec.grace_s:g} s: SIGKILL")
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the group
            if self._pump:
                self._pump.join(timeout=5)
            self.log.info(f"server stopped (exit code {proc.returncode})")

    def _wait_exit(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking at once if the process exits."""
        assert self._proc is not None
        try:
            self._proc.wait(timeout=max(seconds, 0.0))
        except subprocess.TimeoutExpired:
            return

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _probe(http: httpx.Client, timeout: float) -> Any | None:
    """The /v1/models body when the server answers 200, else None."""
    try:
        response = http.get("/v1/models", timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return {"raw": response.text[:2000]}


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
