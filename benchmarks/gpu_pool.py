"""Two jobs, two GPUs: does a `swarmlab worker --gpus N` pool run jobs side by side undisturbed?

It starts everything a real deployment has, each as its own process group on loopback: a Redis
broker (or uses `--broker`), a hub (`swarmlab serve --executor celery`) over a challenge pack
written for the run, and one Celery worker with `--gpus N`. It uploads one entry (the engine's
server on the `fast` or `reference` backend; the checkpoint lives outside the bundle and is
named in the manifest's env), queues `--jobs M` jobs at once, and polls the public job records
until they end. Then it runs the same job alone, once per device (`--baseline each`) or on the
first (`--baseline first`), through a worker pinned to that one device.

It prints, per job: the device (from the worker's claim label), the `CUDA_VISIBLE_DEVICES` the
entry's server saw (its own log line), start and end (hub timestamps), the speed stage's window,
TPS, TPS alone on that device and the difference; then the pairs of jobs on different devices
whose speed stages overlapped. Everything lands in `<out>/gpu_pool.json`. Every process it
started is stopped (SIGTERM to the group, then SIGKILL), also on error or Ctrl-C.

    python benchmarks/gpu_pool.py --gpus 2 --jobs 4 --out runs/pool              # H200 x2
    python benchmarks/gpu_pool.py --gpus 2 --jobs 2 --model tiny --backend reference \\
        --device cpu --dtype float32 --visible 4,5 --out runs/pool-cpu             # CPU rehearsal
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
PROMPTS = REPO / "challenges" / "fast-gemma" / "prompts" / "public.jsonl"
FLAVOR = "pool"
PROFILE = "pool"
POLL_S = 0.5
STOP_GRACE_S = 20.0
TARGET_PCT = 2.0

SERVE_PY = '''"""The pool benchmark's entry: log the device this process was pinned to, then become
`swarmlab engine serve` on the checkpoint the manifest's env names."""

import os
import sys

argv = [sys.executable, "-m", "swarmlab.engine", "serve", "--model", os.environ["MODEL_ID"],
        "--host", "127.0.0.1", "--port", os.environ["PORT"],
        "--served-model-name", os.environ["SERVED_MODEL_NAME"],
        "--backend", os.environ["ENGINE_BACKEND"], "--device", os.environ["ENGINE_DEVICE"],
        "--dtype", os.environ["ENGINE_DTYPE"]]
if os.environ.get("ENGINE_THREADS"):
    argv += ["--threads", os.environ["ENGINE_THREADS"]]
print(f"pool-entry: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')} "
      f"pid={os.getpid()}", flush=True)
os.execv(sys.executable, argv)
'''


class PoolError(RuntimeError):
    """A part of the pool did not come up or a job failed; the message says where to look."""


# -- processes ---------------------------------------------------------------------------------


class Processes:
    """Every process the benchmark starts, each in its own session so a group kill reaches its
    children (Celery's pool, the entries' servers); `stop_all` runs on any exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the group, SIGKILL it after the grace period; forget it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(ProcessLookupError):  # grandchildren left in the group
            os.killpg(process.pid, signal.SIGKILL)
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)

    def collect(self, dest: Path, chars: int = 20_000) -> None:
        """The end of every process's log in one file (the GPU tool returns few files)."""
        with dest.open("w", encoding="utf-8") as out:
            for log in sorted(self.logs.glob("*.log")):
                out.write(f"===== {log.stem} (last {chars} characters)\n")
                out.write(log.read_text(errors="replace")[-chars:] + "\n")

    def kill_leftovers(self, marker: Path) -> None:
        """SIGKILL processes whose command line names a path inside ``marker``, this run's folder.

        The harness starts each entry's server in a session of its own, so a worker killed
        mid-job leaves its server running (and holding its GPU); only this run's processes
        name its folder (the checkpoint path), so this reaches no one else's.
        """
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                pid = int(cmdline.parent.name)
                if pid != os.getpid() and f"{marker}/".encode() in cmdline.read_bytes():
                    os.kill(pid, signal.SIGKILL)

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], T | None], what: str, timeout_s: float, alive: Callable[[], None]
) -> T:
    """Poll ``check`` until it gives a value; ``alive`` raises when a needed process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value is not None:
            return value
        alive()
        time.sleep(POLL_S)  # polling interval of a condition with a deadline
    raise PoolError(f"gave up after {timeout_s:.0f}s waiting for {what}")


def running(procs: Processes, process: subprocess.Popen[bytes], name: str) -> Callable[[], None]:
    """A liveness check naming the process and quoting its log."""

    def check() -> None:
        if process.poll() is not None:
            raise PoolError(f"{name} exited ({process.returncode}):\n{procs.tail(name)}")

    return check


# -- broker, hub, worker -----------------------------------------------------------------------


def start_redis(procs: Processes, binary: str, data: Path) -> str:
    """A private redis-server on loopback, no persistence; its URL once it answers PING."""
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(data)]
    process = procs.start("redis", argv, dict(os.environ))

    def pong() -> bool | None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            return True if s.recv(16).startswith(b"+PONG") else None
        return None

    wait_until(pong, "redis-server to answer PING", 30, running(procs, process, "redis"))
    return f"redis://127.0.0.1:{port}/0"


def swarmlab(*args: str) -> list[str]:
    """The swarmlab CLI on this interpreter (works without the console script installed)."""
    return [sys.executable, "-c", "from swarmlab.cli import main; main()", *args]


@dataclass
class Hub:
    """A running hub and an organizer client (organizers have no job quota)."""

    url: str
    http: httpx.Client

    def post(self, path: str, expect: tuple[int, ...], **kwargs: Any) -> dict[str, Any]:
        response = self.http.post(path, **kwargs)
        if response.status_code not in expect:
            raise PoolError(f"POST {path} -> {response.status_code}: {response.text[:800]}")
        return dict(response.json())

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/jobs/{job_id}").raise_for_status().json())

    def artifact(self, job_id: str, name: str) -> str:
        response = self.http.get(f"/v1/jobs/{job_id}/artifacts/{name}")
        return response.text if response.status_code == 200 else ""


def start_hub(procs: Processes, pack: Path, data: Path, broker: str, prefix: str) -> Hub:
    port = free_port()
    argv = swarmlab("serve", "--challenge", str(pack), "--data-dir", str(data))
    argv += ["--port", str(port), "--executor", "celery", "--broker", broker]
    env = {**os.environ, "SWARMLAB_QUEUE_PREFIX": prefix, "SWARMLAB_REAP_EVERY_S": "2"}
    process = procs.start("hub", argv, env)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool | None:
        with contextlib.suppress(httpx.HTTPError):
            return True if httpx.get(f"{url}/v1", timeout=2).status_code == 200 else None
        return None

    wait_until(answers, "the hub to answer GET /v1", 120, running(procs, process, "hub"))
    token = (data / "organizer.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    return Hub(url, httpx.Client(base_url=url, headers=headers, timeout=60))


def start_worker(
    procs: Processes, hub: Hub, args: argparse.Namespace, name: str, visible: str, gpus: str
) -> subprocess.Popen[bytes]:
    """`swarmlab worker --gpus` on the broker, seeing the devices in ``visible``."""
    token = hub.post("/v1/workers", (201,), json={"name": name})["token"]
    argv = swarmlab("worker", "--hub", hub.url, "--token", token, "--broker", args.broker_url)
    argv += ["--flavor", FLAVOR, "--gpus", gpus, "--queue-prefix", args.queue_prefix]
    argv += ["--workdir", str(args.workdir / name), "--no-install"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
    return procs.start(name, argv, env)


class GpuSampler:
    """Which processes hold memory on which physical GPU, read from nvidia-smi every second:
    evidence of pinning that does not rely on the benchmark's own bookkeeping."""

    QUERY = ("--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits")

    def __init__(self) -> None:
        self.binary = shutil.which("nvidia-smi")
        self.uuids: dict[str, str] = {}
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.uuids = self._gpus() if self.binary else {}
        self.seen: dict[int, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nvidia-smi", daemon=True)

    def _read(self, *args: str) -> list[list[str]]:
        done = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=20)
        return [[c.strip() for c in line.split(",")] for line in done.stdout.splitlines() if line]

    def _gpus(self) -> dict[str, str]:
        rows = self._read("--query-gpu=uuid,index", "--format=csv,noheader")
        return {row[0]: row[1] for row in rows if len(row) == 2}

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError):
                for pid, uuid, *_ in self._read(*self.QUERY):
                    self.seen.setdefault(int(pid), set()).add(self.uuids.get(uuid, uuid))

    def __enter__(self) -> GpuSampler:
        if self.binary:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def gpus_of(self, pids: list[int]) -> str:
        """The physical GPU indexes the pids were seen on ("" without nvidia-smi)."""
        return ",".join(sorted({gpu for pid in pids for gpu in self.seen.get(pid, ())}))


# -- the pack, the entry, the model ------------------------------------------------------------


def write_pack(root: Path, args: argparse.Namespace) -> Path:
    """A challenge pack with the public prompts and one profile sized by the options.

    JSON is YAML, so the spec needs no YAML writer. No PPL truth and no reference decode: the
    run measures speed and greedy decode only.
    """
    pack = root / "pack"
    (pack / "prompts").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROMPTS, pack / "prompts" / "public.jsonl")
    profile = {"num_prompts": args.prompts, "output_len": args.output_len}
    profile |= {"warmup": args.warmup, "decode_prompts": args.decode_prompts}
    spec = {
        "name": "gpu-pool",
        "title": "GPU pool benchmark",
        "scoring": {"score_field": "tps", "label": "Decode throughput", "unit": "tok/s"},
        "jobs": {
            "flavor": FLAVOR,
            "timeout_s": args.job_timeout_s,
            "max_attempts": 1,
            "lease_s": 60,
            "quota": {"per_agent": 100, "per_human": 100, "window_hours": 24},
        },
        "bench": {
            "public_prompts": "prompts/public.jsonl",
            "private_prompts": None,
            "ready_timeout_s": args.job_timeout_s,
            "request_timeout_s": 300,
            "profiles": {PROFILE: profile},
        },
    }
    (pack / "challenge.yaml").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return pack


def write_entry(root: Path, args: argparse.Namespace, model: Path) -> Path:
    """The entry: serve.py above and a manifest whose env names the checkpoint and backend."""
    entry = root / "entry"
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "serve.py").write_text(SERVE_PY, encoding="utf-8")
    env = {"MODEL_ID": str(model), "ENGINE_BACKEND": args.backend}
    env |= {"ENGINE_DEVICE": args.device, "ENGINE_DTYPE": args.dtype}
    env |= {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
    env |= {"NVSHMEM_DISABLE_NVLS": "1"}
    if args.threads:
        env["ENGINE_THREADS"] = str(args.threads)
    env |= dict(pair.split("=", 1) for pair in args.entry_env)
    manifest = {
        "name": f"pool-{args.backend}",
        "description": f"swarmlab engine serve --backend {args.backend} on {model.name}",
        "model_id": "swarmlab/pool-model",  # the weights stay outside the bundle (env MODEL_ID)
        "served_model_name": "pool-model",
        "serve": ["python", "serve.py"],
        "env": env,
    }
    (entry / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return entry


def bundle(entry: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(entry.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def prepare_model(args: argparse.Namespace, root: Path) -> Path:
    """``--model tiny`` builds the tiny model, ``preset:NAME`` random weights of that shape
    (benchmarks/random_checkpoint.py), anything else is a checkpoint directory."""
    if args.model == "tiny":
        out = root / "model-tiny"
        command = swarmlab("engine", "make-tiny", str(out), "--seed", "0")
    elif args.model.startswith("preset:"):
        out = root / f"model-{args.model.removeprefix('preset:')}"
        command = [sys.executable, str(REPO / "benchmarks" / "random_checkpoint.py"), str(out)]
        command += ["--preset", args.model.removeprefix("preset:"), "--device", args.device]
    else:
        return Path(args.model).resolve()
    if not (out / "config.json").is_file():
        print(f"building the checkpoint: {' '.join(command[-6:])}", flush=True)
        subprocess.run(command, check=True, timeout=args.deadline_s)
    return out


# -- one job's record --------------------------------------------------------------------------


@dataclass
class JobRun:
    """What one job did, from its public record and its artifacts."""

    job: str
    phase: str
    status: str
    device: str
    visible: str
    started: float
    finished: float
    speed_start: float | None
    speed_end: float | None
    tps: float | None
    alone_tps: float | None = None
    diff_pct: float | None = None
    message: str = ""
    server_pids: list[int] = field(default_factory=list)
    nvidia_smi_gpu: str = ""
    log_tail: str = ""


def _epoch(stamp: str | None) -> float:
    if not stamp:
        return float("nan")
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def speed_window(log: str) -> tuple[float | None, float | None]:
    """When the harness entered the speed stage and the stage after it (server.log lines)."""
    stages = [
        (line.split(" ", 1)[0], line.rsplit(" ", 1)[1])
        for line in log.splitlines()
        if " [harness] stage " in line
    ]
    times = [(_epoch(stamp), name) for stamp, name in stages]
    start = next((t for t, name in times if name == "speed"), None)
    end = next((t for t, name in times if start is not None and t > start), None)
    return start, end


def pinned_device(log: str) -> tuple[str, list[int]]:
    """The CUDA_VISIBLE_DEVICES the entry's server printed, and its pids."""
    lines = [line for line in log.splitlines() if "pool-entry: CUDA_VISIBLE_DEVICES=" in line]
    visible = {line.split("CUDA_VISIBLE_DEVICES=", 1)[1].split()[0] for line in lines}
    pids = [int(line.rsplit("pid=", 1)[1]) for line in lines]
    return ",".join(sorted(visible)) or "?", pids


def job_run(hub: Hub, job: dict[str, Any], phase: str) -> JobRun:
    log = hub.artifact(job["id"], "server.log")
    visible, pids = pinned_device(log)
    start, end = speed_window(log)
    return JobRun(
        job=job["id"],
        phase=phase,
        status=job["status"],
        device=str(job.get("worker") or "?").rsplit("/gpu", 1)[-1],
        visible=visible,
        started=_epoch(job["started_at"]),
        finished=_epoch(job["finished_at"]),
        speed_start=start,
        speed_end=end,
        tps=(job.get("summary") or {}).get("tps"),
        message=job.get("message") or "",
        server_pids=pids,
        log_tail="" if job["status"] == "completed" else log[-4000:],
    )


def run_jobs(
    hub: Hub, submission: str, count: int, phase: str, alive: Callable[[], None], timeout_s: float
) -> list[JobRun]:
    """Queue ``count`` jobs at once and wait for all of them to end."""
    body = {"submission_id": submission, "profile": PROFILE}
    ids = [hub.post("/v1/jobs", (202,), json=body)["id"] for _ in range(count)]
    ended = ("completed", "error", "timed_out", "cancelled")

    def all_ended() -> list[dict[str, Any]] | None:
        jobs = [hub.job(job_id) for job_id in ids]
        return jobs if all(job["status"] in ended for job in jobs) else None

    jobs = wait_until(all_ended, f"{count} {phase} job(s) to end", timeout_s, alive)
    return [job_run(hub, job, phase) for job in jobs]


# -- analysis and report -----------------------------------------------------------------------


def _overlap(a: tuple[float | None, float | None], b: tuple[float | None, float | None]) -> float:
    if None in a or None in b:
        return 0.0
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))  # type: ignore[type-var,operator]


def overlaps(runs: list[JobRun]) -> list[dict[str, Any]]:
    """Pairs of jobs on different devices that ran, and timed, at the same time."""
    pairs = []
    for a, b in combinations(runs, 2):
        if a.device == b.device:
            continue
        run = _overlap((a.started, a.finished), (b.started, b.finished))
        speed = _overlap((a.speed_start, a.speed_end), (b.speed_start, b.speed_end))
        shortest = min(
            (a.speed_end or 0) - (a.speed_start or 0), (b.speed_end or 0) - (b.speed_start or 0)
        )
        if run > 0:
            pairs.append(
                {
                    "jobs": [a.job, b.job],
                    "devices": [a.device, b.device],
                    "run_overlap_s": round(run, 2),
                    "speed_overlap_s": round(speed, 2),
                    "speed_overlap_pct": round(100 * speed / shortest, 1) if shortest > 0 else 0.0,
                }
            )
    return pairs


def compare(runs: list[JobRun], alone: list[JobRun]) -> None:
    """Fill each run's TPS alone (same device, else the first alone run) and the difference."""
    by_device = {run.device: run.tps for run in alone if run.tps}
    fallback = next(iter(by_device.values()), None)
    for run in runs:
        run.alone_tps = by_device.get(run.device, fallback)
        if run.tps and run.alone_tps:
            run.diff_pct = round(100 * (run.tps - run.alone_tps) / run.alone_tps, 2)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_report(runs: list[JobRun], alone: list[JobRun], pairs: list[dict[str, Any]]) -> None:
    t0 = min(run.started for run in runs + alone)
    print(
        f"\n{'job':<18}{'phase':<7}{'GPU':<5}{'CVD':<5}{'start':>8}{'end':>8}"
        f"{'speed from-to':>16}{'TPS':>10}{'alone':>10}{'diff %':>8}{'smi':>5}"
    )
    for run in runs + alone:
        speed = (
            f"{run.speed_start - t0:7.1f}-{run.speed_end - t0:<7.1f}"
            if run.speed_start and run.speed_end
            else "-"
        )
        print(
            f"{run.job:<18}{run.phase:<7}{run.device:<5}{run.visible:<5}"
            f"{run.started - t0:8.1f}{run.finished - t0:8.1f}{speed:>16}"
            f"{run.tps or 0:10.2f}{_num(run.alone_tps, '.2f'):>10}{_num(run.diff_pct, '+.2f'):>8}"
            f"{run.nvidia_smi_gpu or '-':>5}"
            f"{'' if run.status == 'completed' else '  ' + run.status + ': ' + run.message[:80]}"
        )
    print(f"\nconcurrent pairs on different GPUs: {len(pairs)} (times in s from the first start)")
    for pair in pairs:
        print(
            f"  {pair['jobs'][0]} (gpu {pair['devices'][0]}) + {pair['jobs'][1]} "
            f"(gpu {pair['devices'][1]}): ran together {pair['run_overlap_s']} s, speed stages "
            f"together {pair['speed_overlap_s']} s ({pair['speed_overlap_pct']}% of the shorter)"
        )
    worst = max((abs(run.diff_pct) for run in runs if run.diff_pct is not None), default=None)
    if worst is not None:
        verdict = "within" if worst <= TARGET_PCT else "OUTSIDE"
        print(f"largest |TPS - TPS alone|: {worst:.2f}% ({verdict} the {TARGET_PCT:g}% target)")


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--gpus", type=int, default=2, help="Devices the pool's worker uses (--gpus N).")
    add("--jobs", type=int, default=4, help="Jobs queued at once.")
    add("--out", type=Path, required=True, help="Where gpu_pool.json and the logs go.")
    add("--visible", default=None, help="CUDA_VISIBLE_DEVICES for the worker (fake ids on CPU).")
    add("--broker", default=None, help="A running broker URL; default: start redis-server.")
    add("--redis-server", default="redis-server", help="redis-server binary to start.")
    add("--model", default="preset:gemma-4-e4b", help="tiny, preset:NAME, or a checkpoint dir.")
    add("--backend", default="fast", help="Engine backend the entry serves with.")
    add("--device", default="cuda", help="ENGINE_DEVICE of the entry (cuda or cpu).")
    add("--dtype", default="bfloat16", help="ENGINE_DTYPE of the entry.")
    add("--threads", type=int, default=None, help="Torch CPU threads of each server.")
    add("--entry-env", action="append", default=[], help="KEY=VALUE for the entry's env.")
    add("--prompts", type=int, default=16, help="Timed prompts per job.")
    add("--output-len", type=int, default=256, help="Tokens per timed request.")
    add("--warmup", type=int, default=2, help="Untimed warm-up requests.")
    add("--decode-prompts", type=int, default=2, help="Prompts in decode capture.")
    add("--baseline", choices=("each", "first", "none"), default="each")
    add("--job-timeout-s", type=int, default=900, help="Each job's wall-clock limit.")
    add("--deadline-s", type=float, default=570, help="The whole benchmark's limit.")
    add("--workdir", type=Path, default=None, help="Work folder; built checkpoints are kept.")
    return parser.parse_args(argv)


def devices_of(args: argparse.Namespace) -> list[str]:
    visible = args.visible or os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d for d in (visible or "").split(",") if d] or [str(i) for i in range(args.gpus)]
    if len(ids) < args.gpus:
        raise PoolError(f"--gpus {args.gpus} but only {len(ids)} devices visible ({visible})")
    return ids[: args.gpus]


def phase(
    procs: Processes,
    hub: Hub,
    args: argparse.Namespace,
    submission: str,
    spec: tuple[str, str, str, int],
) -> list[JobRun]:
    """One worker (name, visible devices, --gpus) running ``count`` jobs queued at once."""
    name, visible, gpus, count = spec
    worker = start_worker(procs, hub, args, name, visible, gpus)
    left = args.deadline_s - (time.monotonic() - args.started)
    try:
        return run_jobs(hub, submission, count, name, running(procs, worker, name), left)
    finally:
        procs.stop(worker)


def machine() -> dict[str, Any]:
    """Where the figures come from: host, CPUs, GPUs, the checkout's commit."""
    info: dict[str, Any] = {"host": socket.gethostname(), "cpus": os.cpu_count()}
    info["python"] = sys.version.split()[0]
    stamp = REPO / "COMMIT"  # written by gpu_pool_prepare.sh into the carried copy
    if stamp.is_file():
        info["commit"] = stamp.read_text().strip()
    else:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            git = ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]
            info["commit"] = subprocess.run(git, capture_output=True, text=True).stdout.strip()
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader"]
        info["gpus"] = subprocess.run(query, capture_output=True, text=True).stdout.splitlines()
    return info


def record(
    report: dict[str, Any], runs: list[JobRun], alone: list[JobRun], sampler: GpuSampler
) -> None:
    """Put the comparison so far into the report (kept even if a later phase runs out of time)."""
    for run in runs + alone:
        run.nvidia_smi_gpu = sampler.gpus_of(run.server_pids)
    compare(runs, alone)
    report["runs"] = [asdict(run) for run in runs]
    report["alone"] = [asdict(run) for run in alone]
    report["concurrent_pairs"] = overlaps(runs)
    diffs = [abs(run.diff_pct) for run in runs if run.diff_pct is not None]
    report["max_abs_diff_pct"] = max(diffs, default=None)


def run_phases(
    procs: Processes,
    hub: Hub,
    args: argparse.Namespace,
    submission: str,
    report: dict[str, Any],
) -> tuple[list[JobRun], list[JobRun]]:
    """The pool's jobs at once, then each baseline job alone; nvidia-smi watching throughout."""
    devices, timings = report["devices"], report["timings_s"]
    runs: list[JobRun] = []
    alone: list[JobRun] = []
    with GpuSampler() as sampler:
        started = time.monotonic()
        pool = ("pool", ",".join(devices), str(len(devices)), args.jobs)
        runs = phase(procs, hub, args, submission, pool)
        timings["pool"] = round(time.monotonic() - started, 1)
        record(report, runs, alone, sampler)
        for device in {"each": devices, "first": devices[:1], "none": []}[args.baseline]:
            started = time.monotonic()
            alone += phase(procs, hub, args, submission, (f"alone{device}", device, "1", 1))
            timings[f"alone{device}"] = round(time.monotonic() - started, 1)
            record(report, runs, alone, sampler)
    return runs, alone


def benchmark(procs: Processes, args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Set up broker, hub and entry, run the phases, print and record the comparison."""
    report["machine"] = machine()
    report["devices"] = devices_of(args)
    report["timings_s"] = timings = {}
    started = time.monotonic()
    report["model"] = str(model := prepare_model(args, args.workdir))
    timings["checkpoint"] = round(time.monotonic() - started, 1)
    if not args.broker:
        args.broker = start_redis(procs, args.redis_server, args.workdir / "redis")
    args.broker_url = report["broker"] = args.broker
    args.queue_prefix = f"pool-{os.getpid()}."
    pack = write_pack(args.workdir, args)
    hub = start_hub(procs, pack, args.workdir / "hub", args.broker, args.queue_prefix)
    entry = write_entry(args.workdir, args, model)
    report["manifest"] = json.loads((entry / "manifest.json").read_text())
    submission = hub.post("/v1/submissions", (200, 201), content=bundle(entry))["id"]
    timings["setup"] = round(time.monotonic() - started - timings["checkpoint"], 1)
    runs, alone = run_phases(procs, hub, args, submission, report)
    print_report(runs, alone, report["concurrent_pairs"])


def reset_workdir(workdir: Path) -> None:
    """A fresh work folder, except built checkpoints (``model-*``), which a re-run reuses."""
    workdir.mkdir(parents=True, exist_ok=True)
    for child in workdir.iterdir():
        if not child.name.startswith("model-"):
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = args.workdir is None
    args.workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="gpu-pool-"))).resolve()
    reset_workdir(args.workdir)
    (args.workdir / "logs").mkdir(exist_ok=True)
    procs = Processes(args.workdir / "logs")
    report: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "argv": sys.argv}

    def interrupted(*_: object) -> None:
        report["error"] = "stopped by SIGTERM (a time limit?) before the end"
        sys.exit(143)  # runs the cleanup below

    signal.signal(signal.SIGTERM, interrupted)
    try:
        benchmark(procs, args, report)
        ended = report["runs"] + report["alone"]
        return 0 if all(r["status"] == "completed" for r in ended) else 1
    except (PoolError, subprocess.SubprocessError, httpx.HTTPError) as exc:
        report["error"] = str(exc)
        print(f"gpu_pool: {exc}", file=sys.stderr)
        return 2
    finally:
        procs.stop_all()
        procs.kill_leftovers(args.workdir)
        procs.collect(args.out / "processes.log")
        report["wall_s"] = round(time.monotonic() - args.started, 1)
        (args.out / "gpu_pool.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        if scratch:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
