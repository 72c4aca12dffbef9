"""`run_benchmark`: one whole benchmark run, the API the hub's job runner calls.

Stages, in order: `setup` (manifest, inputs, server environment), `server` (start, wait
until ready), `speed`, `decode`, `ppl` (when a ground truth is given), `identity` (when a
reference decode is given). Every stage writes its files into the state folder as it goes;
`summary.json` is rewritten after each stage, so a failed stage leaves it holding the fields of
the stages before. `status.json` always says where the run is, and how it ended.

Nothing hangs: every request has a timeout, the overall deadline and the cancel event are
watched by a thread that kills the server (which breaks any request in flight), and the
server is always torn down.
"""

from __future__ import annotations

import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from swarmlab import __version__
from swarmlab.bench.artifacts import write_json
from swarmlab.bench.chat import chat_encoder
from swarmlab.bench.client import EndpointClient
from swarmlab.bench.decode import DECODE_FILE, run_decode
from swarmlab.bench.environment import DEFAULT_CACHE, prepare_environment
from swarmlab.bench.errors import BenchError, InputError, RunCancelled, RunTimedOut
from swarmlab.bench.identity import IdentityReport, check_identity
from swarmlab.bench.inputs import PplRecord, Prompt, load_ppl_records, load_prompts
from swarmlab.bench.manifest import Manifest, load_manifest
from swarmlab.bench.ppl import run_ppl
from swarmlab.bench.runlog import RunLog
from swarmlab.bench.server import ServerProcess, ServerSpec, launch_spec
from swarmlab.bench.speed import run_speed
from swarmlab.bench.stage import StageContext

MEASURED_STAGES = frozenset({"speed", "decode", "ppl"})
SUMMARY_ORDER = ("speed", "model", "decode", "ppl", "identity")
WATCHDOG_POLL_S = 0.2
WATCHDOG_MARGIN_S = 1.0
BROKEN_CONNECTION_WAIT_S = 2.0  # after a dropped connection, how long to wait for an exit status  # timeouts capped by the deadline end this much after it
INSTALL_TIMEOUT_S = 3600.0  # dependency installs, unless the deadline is nearer


@dataclass(frozen=True)
class BenchSettings:
    """Sizes of a run: the challenge's `full` profile by default (128 x 512, 4 warm-up)."""

    num_prompts: int = 128
    output_len: int = 512
    warmup: int = 4
    decode_prompts: int | None = None
    decode_max_tokens: int | None = None
    ppl_records: int | None = None


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; paths are plain paths, nothing hub-specific."""

    submission: Path
    state_dir: Path
    prompts: Path
    ppl_truth: Path | None = None
    reference_decode: Path | None = None
    settings: BenchSettings = field(default_factory=BenchSettings)
    install: bool = True
    env_cache_dir: Path = DEFAULT_CACHE
    tokenizer: Path | None = None
    ready_timeout_s: float = 900.0
    poll_interval_s: float = 5.0
    request_timeout_s: float = 180.0
    stop_grace_s: float = 10.0
    deadline_s: float | None = None
    port: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    stages: frozenset[str] = MEASURED_STAGES

    def __post_init__(self) -> None:
        unknown = set(self.stages) - MEASURED_STAGES
        if unknown or not self.stages:
            raise ValueError(
                f"stages must be a non-empty subset of {sorted(MEASURED_STAGES)}, got {sorted(self.stages)}"
            )
        if self.reference_decode is not None and "decode" not in self.stages:
            raise ValueError("a reference decode needs the decode stage")


@dataclass(frozen=True)
class Progress:
    """A progress report: `done` of `total` requests in `stage` (total 0: not countable)."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class RunResult:
    """How a run ended; the files in `state_dir` hold the detail."""

    status: str  # completed | error | timed_out | cancelled
    state_dir: Path
    summary: dict[str, Any]
    error: str | None = None
    failed_stage: str | None = None
    identity: IdentityReport | None = None

    @property
    def ok(self) -> bool:
        """Whether every stage completed."""
        return self.status == "completed"


ProgressCallback = Callable[[Progress], None]


def run_benchmark(
    config: RunConfig,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run every stage against the submission's own server; never raises for a bad submission.

    `on_progress` is called from the calling thread; setting `cancel` stops the run within
    about a second (the server is killed), ending with status `cancelled`.
    """
    run = _Run(config, on_progress or (lambda _: None), cancel or threading.Event())
    return run.execute()


class _Run:
    """The state of one run: its log, status file, summary so far, and the stop watchdog."""

    def __init__(self, config: RunConfig, on_progress: ProgressCallback, cancel: threading.Event):
        self.config = config
        self.state = config.state_dir
        self.state.mkdir(parents=True, exist_ok=True)
        self.log = RunLog(self.state / "server.log")
        self.on_progress = on_progress
        self.cancel = cancel
        self.deadline = None if config.deadline_s is None else time.monotonic() + config.deadline_s
        self.started_at = _now()
        self.stage = "setup"
        self.stages_done: list[str] = []
        self.fields: dict[str, dict[str, Any]] = {}
        self.identity: IdentityReport | None = None
        self.server: ServerProcess | None = None
        self.stop_reason: BenchError | None = None
        self._finished = threading.Event()

    def execute(self) -> RunResult:
        """Run the stages, tear the server down, then record how the run ended."""
        watchdog = threading.Thread(target=self._watch, name="bench-watchdog", daemon=True)
        watchdog.start()
        try:
            status, error = self._outcome()
        finally:
            self._finished.set()
            if self.server:
                self.server.stop()
        result = self._finish(status, error)
        self.log.close()
        return result

    def _outcome(self) -> tuple[str, BenchError | None]:
        try:
            self._stages()
            return "completed", None
        except BenchError as exc:
            error = self.stop_reason or self._stop_due() or exc
            return error.status, error
        except KeyboardInterrupt:
            return "cancelled", RunCancelled("interrupted by the user (Ctrl-C)")
        except Exception as exc:  # a harness bug: still leave a readable status and log
            self.log.info(traceback.format_exc())
            bug = BenchError(f"internal harness error: {exc!r}; please report it with server.log")
            return "error", self.stop_reason or bug

    def _stages(self) -> None:
        self._enter("setup")
        manifest = load_manifest(self.config.submission)
        prompts, records = self._load_inputs()
        self._write_request(manifest)
        env = prepare_environment(
            manifest.dependencies,
            self.config.submission,
            self.log,
            install=self.config.install,
            cache_dir=self.config.env_cache_dir,
            timeout_s=self._remaining(INSTALL_TIMEOUT_S),
        )
        self._checkpoint()
        self.fields["model"] = {
            "model": manifest.model_name,
            "dependencies": list(manifest.dependencies),
        }
        write_json(self.state / "run_environment.json", _environment_record(env.describe()))
        self.server = ServerProcess(self._server_spec(manifest, env.python), self.log)
        self._serve(self.server, manifest, prompts, records)
        if self.config.reference_decode is not None:
            self._enter("identity")
            self._identity(self.config.reference_decode)

    def _serve(
        self,
        server: ServerProcess,
        manifest: Manifest,
        prompts: list[Prompt],
        records: list[PplRecord],
    ) -> None:
        self._enter("server")
        server.start()
        ready = server.wait_ready()
        write_json(
            self.state / "server.json",
            self._server_record(server, manifest, ready.ready_s, ready.models),
        )
        client = EndpointClient(
            server.spec.base_url,
            manifest.model_name,
            timeout_s=lambda: self._remaining(self.config.request_timeout_s),
            on_broken=lambda: self._server_alive(),
        )
        try:
            self._measure(client, manifest, prompts, records)
        finally:
            client.close()

    def _measure(
        self,
        client: EndpointClient,
        manifest: Manifest,
        prompts: list[Prompt],
        records: list[PplRecord],
    ) -> None:
        s, wanted = self.config.settings, self.config.stages
        if "speed" in wanted:
            self._enter("speed")
            self._record(
                "speed",
                run_speed(self._ctx(client), prompts, s.num_prompts, s.output_len, s.warmup),
            )
        if "decode" in wanted:
            self._enter("decode")
            encoder = chat_encoder(self._tokenizer_dir(manifest), client)
            max_tokens = s.decode_max_tokens or s.output_len
            self._record(
                "decode",
                run_decode(self._ctx(client), prompts, encoder, max_tokens, s.decode_prompts),
            )
        if records and "ppl" in wanted:
            self._enter("ppl")
            self._record("ppl", run_ppl(self._ctx(client), records, s.ppl_records))

    def _identity(self, reference: Path) -> None:
        report = check_identity(reference, self.state / DECODE_FILE)
        self.identity = report
        write_json(self.state / "identity.json", {"reference": str(reference), **report.to_json()})
        self.log.info(
            f"greedy identity: {report.verdict.value} ({len(report.divergences)} divergent)"
        )
        self._record(
            "identity",
            {
                "identity": report.verdict.value,
                "identity_divergent_prompts": len(report.divergences),
                "identity_divergent_tokens": sum(d.divergent_tokens for d in report.divergences),
            },
        )

    # -- bookkeeping ---------------------------------------------------------------------------

    def _ctx(self, client: EndpointClient) -> StageContext:
        stage = self.stage
        return StageContext(
            client=client,
            state_dir=self.state,
            log=self.log,
            progress=lambda done, total: self.on_progress(Progress(stage, done, total)),
            checkpoint=self._checkpoint,
        )

    def _enter(self, stage: str) -> None:
        if self.stage != stage:
            self.stages_done.append(self.stage)
        self.stage = stage
        self.log.info(f"stage {stage}")
        self._write_status("running", None)
        self.on_progress(Progress(stage, 0, 0))

    def _record(self, stage: str, values: dict[str, Any]) -> None:
        self.fields[stage] = values
        write_json(self.state / "summary.json", self.summary())

    def summary(self) -> dict[str, Any]:
        """The summary fields gathered so far, in the contract's order."""
        merged: dict[str, Any] = {}
        for stage in SUMMARY_ORDER:
            merged.update(self.fields.get(stage, {}))
        return merged

    def _finish(self, status: str, error: BenchError | None) -> RunResult:
        if status == "completed":
            self.stages_done.append(self.stage)
            self.log.info("run completed")
        else:
            self.log.info(f"run {status} in stage {self.stage}: {error}")
        self._write_status(status, error)
        return RunResult(
            status=status,
            state_dir=self.state,
            summary=self.summary(),
            error=None if error is None else str(error),
            failed_stage=None if error is None else self.stage,
            identity=self.identity,
        )

    def _write_status(self, status: str, error: BenchError | None) -> None:
        record: dict[str, Any] = {
            "status": status,
            "stage": self.stage,
            "stages_completed": self.stages_done,
            "error": None if error is None else str(error),
            "error_type": None if error is None else type(error).__name__,
            "started_at": self.started_at,
            "updated_at": _now(),
            "finished_at": None if status == "running" else _now(),
        }
        write_json(self.state / "status.json", record)

    # -- stopping ------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Kill the server when the caller cancels or the deadline passes."""
        while not self._finished.wait(WATCHDOG_POLL_S):
            reason = self._stop_due()
            if reason is not None:
                self.stop_reason = reason
                self.log.info(str(reason))
                if self.server:
                    self.server.stop()
                return

    def _stop_due(self) -> BenchError | None:
        if self.cancel.is_set():
            return RunCancelled(f"the run was cancelled during stage {self.stage}")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return RunTimedOut(
                f"the run exceeded its {self.config.deadline_s:g} s limit during stage "
                f"{self.stage}; make the server start and answer faster"
            )
        return None

    def _checkpoint(self) -> None:
        reason = self.stop_reason or self._stop_due()
        if reason is not None:
            self.stop_reason = reason
            raise reason

    def _remaining(self, cap: float) -> float:
        """`cap`, or less near the deadline: the watchdog's margin later, so it fires first."""
        if self.deadline is None:
            return cap
        return max(min(cap, self.deadline - time.monotonic() + WATCHDOG_MARGIN_S), 0.1)

    def _server_alive(self) -> None:
        self._checkpoint()
        if self.server:
            self.server.check_alive("mid-request", wait_s=BROKEN_CONNECTION_WAIT_S)

    # -- records -------------------------------------------------------------------------------

    def _load_inputs(self) -> tuple[list[Prompt], list[PplRecord]]:
        prompts = load_prompts(self.config.prompts)
        truth = self.config.ppl_truth
        records = load_ppl_records(truth) if truth is not None else []
        reference = self.config.reference_decode
        if reference is not None and not reference.is_file():
            raise InputError(f"the reference decode {reference} does not exist; give its path")
        return prompts, records

    def _server_spec(self, manifest: Manifest, python: Path) -> ServerSpec:
        return launch_spec(
            manifest,
            self.config.submission,
            python,
            port=self.config.port,
            ready_timeout_s=self._remaining(self.config.ready_timeout_s),
            poll_interval_s=self.config.poll_interval_s,
            grace_s=self.config.stop_grace_s,
        )

    def _tokenizer_dir(self, manifest: Manifest) -> Path | None:
        if self.config.tokenizer is not None:
            return self.config.tokenizer
        if manifest.model_is_local:
            return self.config.submission / manifest.model_id
        return None

    def _write_request(self, manifest: Manifest) -> None:
        c = self.config
        write_json(
            self.state / "run_request.json",
            {
                "submission": str(c.submission.resolve()),
                "prompts": str(c.prompts.resolve()),
                "ppl_truth": None if c.ppl_truth is None else str(c.ppl_truth.resolve()),
                "reference_decode": None if c.reference_decode is None else str(c.reference_decode),
                "settings": c.settings.__dict__,
                "stages": sorted(c.stages),
                "install": c.install,
                "ready_timeout_s": c.ready_timeout_s,
                "request_timeout_s": c.request_timeout_s,
                "deadline_s": c.deadline_s,
                "labels": dict(c.labels),
                "manifest": manifest.to_json(),
                "started_at": self.started_at,
            },
        )

    def _server_record(
        self, server: ServerProcess, manifest: Manifest, ready_s: float, models: Any
    ) -> dict[str, Any]:
        return {
            "base_url": server.spec.base_url,
            "port": server.spec.port,
            "model": manifest.model_name,
            "model_id": manifest.model_id,
            "ready_s": ready_s,
            "ready_at": _now(),
            "pid": server.pid,
            "argv": list(server.spec.argv),
            "models": models,
        }


def _environment_record(server: dict[str, Any]) -> dict[str, Any]:
    return {
        "harness": {
            "swarmlab": __version__,
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": platform.processor(),
        },
        "server": server,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
