"""The job runner: one claimed job from bundle to reported outcome.

It unpacks the submission with the safe extractor, runs the harness into a state folder, keeps
the lease alive with heartbeats that carry the stage, progress and new log lines, uploads the
run's files as artifacts, and reports the outcome. It talks to the hub only through a
`JobChannel`, so the same runner serves inline worker threads (calling the queue directly) and
remote Celery workers (calling the worker API over HTTP).

A heartbeat that finds the lease gone (the hub gave the job to another worker, or it timed out)
stops the run and reports nothing: the hub has already decided the job's fate.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from swarmlab.bench.runner import BenchSettings, Progress, RunConfig, RunResult, run_benchmark
from swarmlab.challenge.spec import BenchProfile
from swarmlab.jobs.errors import LeaseLost
from swarmlab.jobs.leftovers import job_folder
from swarmlab.storage.bundles import BundleError, extract

LOG_FILE = "server.log"
MAX_LOG_CHUNK = 16_384
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024


class JobChannel(Protocol):
    """How a runner reports to the hub; every call raises LeaseLost once the job is not ours."""

    def heartbeat(self, stage: str, progress: float | None, log: str) -> bool:
        """Renew the lease with progress and log text; True when the hub asks to cancel."""

    def upload(self, name: str, path: Path) -> None:
        """Store one artifact file."""

    def finish(self, status: str, message: str, summary: dict[str, Any] | None) -> None:
        """Report how the job ended."""


@dataclass(frozen=True)
class JobInputs:
    """The organizer's files a run reads: prompts, PPL truth, the reference greedy decode."""

    prompts: Path
    ppl_truth: Path | None = None
    reference_decode: Path | None = None
    tokenizer: Path | None = None


@dataclass(frozen=True)
class JobWork:
    """A claimed job as the runner sees it."""

    job_id: str
    bundle: bytes
    inputs: JobInputs
    profile: BenchProfile
    timeout_s: float
    lease_s: float


@dataclass(frozen=True)
class RunnerOptions:
    """Machine-side settings of a worker."""

    workdir: Path
    install: bool = True
    env_cache_dir: Path | None = None
    ready_timeout_s: float = 900.0
    request_timeout_s: float = 180.0
    keep_workdir: bool = False


def free_port() -> int:
    """A loopback TCP port that was free a moment ago, for the entry's server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_settings(profile: BenchProfile) -> BenchSettings:
    """The harness's sizes for a challenge profile."""
    return BenchSettings(
        num_prompts=profile.num_prompts,
        output_len=profile.output_len,
        warmup=profile.warmup,
        decode_prompts=profile.decode_prompts,
        ppl_records=profile.ppl_records,
    )


@dataclass
class _Beat:
    """What the next heartbeat carries, updated by the harness's progress callback."""

    stage: str = "setup"
    progress: float | None = 0.0
    log_offset: int = 0
    lost: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, report: Progress) -> None:
        with self.lock:
            self.stage = report.stage
            self.progress = report.done / report.total if report.total else None


class _Heartbeats:
    """A thread renewing the lease every third of it, so a long stage never loses the job."""

    def __init__(
        self, channel: JobChannel, state_dir: Path, lease_s: float, abandon: threading.Event
    ) -> None:
        self.channel = channel
        self.abandon = abandon
        self.log_path = state_dir / LOG_FILE
        self.every = max(lease_s / 3, 0.2)
        self.beat = _Beat()
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if not self.beat.lost:
            self.send()  # the last log lines and stage before the outcome

    def _loop(self) -> None:
        next_beat = time.monotonic() + self.every
        while not self._stop.wait(min(self.every, 0.2)):
            if self.abandon.is_set():  # the worker is shutting down: the reaper requeues it
                self.beat.lost = True
                self.cancel.set()
                return
            if time.monotonic() >= next_beat:
                self.send()
                next_beat = time.monotonic() + self.every

    def _new_log(self) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self.beat.log_offset)
                data = handle.read(MAX_LOG_CHUNK)
        except FileNotFoundError:
            return ""
        self.beat.log_offset += len(data)
        return data.decode("utf-8", errors="replace")

    def send(self) -> None:
        """One heartbeat; a lost lease or a cancel request sets the cancel event."""
        with self.beat.lock:
            stage, progress = self.beat.stage, self.beat.progress
        try:
            if self.channel.heartbeat(stage, progress, self._new_log()):
                self.cancel.set()
        except LeaseLost:
            self.beat.lost = True
            self.cancel.set()


def _upload_artifacts(channel: JobChannel, state_dir: Path) -> None:
    for path in sorted(state_dir.iterdir()):
        if (
            path.is_file()
            and not path.name.startswith(".")
            and path.stat().st_size <= MAX_ARTIFACT_BYTES
        ):
            channel.upload(path.name, path)


def outcome_summary(result: RunResult) -> dict[str, Any]:
    """summary.json plus what verification needs to name a failure: the first divergence."""
    summary = dict(result.summary)
    if result.identity is not None and result.identity.divergences:
        first = result.identity.divergences[0]
        summary["identity_first_divergence"] = f"prompt {first.id}, token {first.first_divergence}"
    if result.identity is not None and result.identity.problems:
        summary["identity_problems"] = result.identity.problems
    return summary


def run_job(
    work: JobWork,
    channel: JobChannel,
    options: RunnerOptions,
    abandon: threading.Event | None = None,
) -> str | None:
    """Run one claimed job to its end; return the reported status (None: not reported).

    Setting ``abandon`` (the worker is shutting down) stops the run without reporting, so the
    hub's reaper gives the job to another worker.
    """
    root = options.workdir / work.job_id
    try:
        with job_folder(root):
            return _run_in(root, work, channel, options, abandon or threading.Event())
    except LeaseLost:
        return None
    finally:
        if not options.keep_workdir:
            shutil.rmtree(root, ignore_errors=True)


def _run_in(
    root: Path, work: JobWork, channel: JobChannel, options: RunnerOptions, abandon: threading.Event
) -> str | None:
    try:
        extract(io.BytesIO(work.bundle), root / "submission")
    except BundleError as exc:
        channel.finish("error", f"the bundle cannot be unpacked: {exc}", None)
        return "error"
    state = root / "state"
    state.mkdir()
    with _Heartbeats(channel, state, work.lease_s, abandon) as beats:
        result = run_benchmark(_config(work, options, root), beats.beat.update, beats.cancel)
    if beats.beat.lost:
        return None
    _upload_artifacts(channel, state)
    channel.finish(result.status, result.error or "", outcome_summary(result))
    return result.status


def _config(work: JobWork, options: RunnerOptions, root: Path) -> RunConfig:
    inputs = work.inputs
    extra: dict[str, Any] = {}
    if options.env_cache_dir is not None:
        extra["env_cache_dir"] = options.env_cache_dir
    return RunConfig(
        submission=root / "submission",
        state_dir=root / "state",
        prompts=inputs.prompts,
        ppl_truth=inputs.ppl_truth,
        reference_decode=inputs.reference_decode,
        tokenizer=inputs.tokenizer,
        settings=bench_settings(work.profile),
        install=options.install,
        ready_timeout_s=options.ready_timeout_s,
        request_timeout_s=options.request_timeout_s,
        deadline_s=work.timeout_s,
        port=free_port(),  # jobs side by side on one machine must not share the manifest's port
        labels={"job": work.job_id},
        **extra,
    )
