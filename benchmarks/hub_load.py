"""Hub load: N simulated agents, each long-polling its inbox and posting with mentions.

    python benchmarks/hub_load.py --agents 500 --duration 60        # starts its own hub
    python benchmarks/hub_load.py --url http://127.0.0.1:8080 --agents 50

Without `--url` the script starts `swarmlab serve` as a subprocess on a free port, with a
temporary data dir (SQLite, or `--db URL`, an empty database) and the
`benchmarks/hub_load_pack` challenge, whose rate limits
are generous (the default 5 messages/min per agent would measure the throttle, not the hub).

Each agent keeps one long-poll parked on `GET /v1/inbox/{me}?after=&wait=` (pollers start
spread over one wait window, then posting begins) and, every `--interval` seconds (jittered),
posts a message mentioning another agent and then reads the board. Reported: request latency p50/p99 per operation, end-to-end mention delivery latency
(post sent -> recipient's long-poll returns it), throughput, errors, and mentions never
delivered. The ceiling printed next to them is a bare `GET /v1` on the idle hub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PACK = Path(__file__).resolve().parent / "hub_load_pack"
# One TLS context for all agents' clients: building one per client costs ~10 ms of CPU each.
TLS = ssl.create_default_context()
MAX_AGENTS = 2000
MAX_DURATION_S = 600


@dataclass
class Stats:
    """Everything measured, in seconds."""

    latency: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    sent: dict[str, float] = field(default_factory=dict)  # message id -> post sent
    arrived: dict[str, float] = field(default_factory=dict)  # message id -> first delivery

    def lost(self) -> int:
        return len(self.sent.keys() - self.arrived.keys())

    def delivery_latencies(self) -> list[float]:
        return [self.arrived[i] - t for i, t in self.sent.items() if i in self.arrived]

    def record(self, op: str, seconds: float) -> None:
        self.latency.setdefault(op, []).append(seconds)


@dataclass(frozen=True)
class Agent:
    """One simulated agent with its own connections, as a separate process would have."""

    handle: str
    http: httpx.AsyncClient


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# -- the hub under test ------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def own_hub(data_dir: Path, db: str | None) -> AsyncIterator[str]:
    """Run `swarmlab serve` on a free port with the load pack; yield its URL."""
    port = free_port()
    cmd = [sys.executable, "-c", "from swarmlab.cli import main; main()"]
    cmd += ["serve", "--challenge", str(PACK)]
    cmd += ["--data-dir", str(data_dir), "--port", str(port)]
    cmd += ["--db", db] if db else []
    log = (data_dir / "hub.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()
        log.close()


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the hub exited with {proc.returncode}; see its hub.log")
            with suppress(httpx.TransportError):
                if (await client.get("/v1")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise SystemExit(f"the hub did not answer GET /v1 within {timeout_s:.0f} s")


# -- simulated agents --------------------------------------------------------------------------


async def timed(stats: Stats, op: str, request: Any) -> httpx.Response | None:
    """Await one request, recording its latency, or its error and None."""
    started = time.perf_counter()
    try:
        response: httpx.Response = await request
    except httpx.HTTPError as exc:
        stats.errors[f"{op}: {type(exc).__name__}"] += 1
        return None
    stats.record(op, time.perf_counter() - started)
    if response.status_code >= 400:
        stats.errors[f"{op}: HTTP {response.status_code}"] += 1
        return None
    return response


async def register_all(
    client: httpx.AsyncClient, n: int, stats: Stats, stack: AsyncExitStack
) -> list[Agent]:
    prefix = f"load-{random.randrange(16**6):06x}"
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> Agent | None:
        body = {"agent_id": f"{prefix}-{i}", "model": "sim", "harness": "hub_load"}
        async with gate:
            response = await timed(stats, "register", client.post("/v1/agents/register", json=body))
        if response is None:
            return None
        headers = {"Authorization": f"Bearer {response.json()['token']}"}
        http = httpx.AsyncClient(base_url=client.base_url, headers=headers, timeout=30, verify=TLS)
        return Agent(body["agent_id"], await stack.enter_async_context(http))

    agents = await asyncio.gather(*(one(i) for i in range(n)))
    return [a for a in agents if a is not None]


async def poll_inbox(me: Agent, stats: Stats, wait: float) -> None:
    """Keep one long-poll parked; timestamp every mention as it arrives.

    Independent agents start watching at different moments, so each poller starts at a
    random point of one wait window; otherwise every park would time out in the same instant.
    """
    await asyncio.sleep(random.Random(me.handle).uniform(0, wait))
    cursor = ""
    while True:
        params = {"after": cursor, "order": "asc", "limit": 50, "wait": wait}
        request = me.http.get(f"/v1/inbox/{me.handle}", params=params, timeout=wait + 30)
        response = await timed(stats, "inbox long-poll", request)
        if response is None:
            await asyncio.sleep(1)
            continue
        page = response.json()
        now = time.perf_counter()
        for item in page["items"]:
            stats.arrived.setdefault(item["id"], now)
        cursor = page.get("cursor") or cursor


async def post_and_read(me: Agent, peers: list[Agent], stats: Stats, interval: float) -> None:
    """Every ~interval s: post a mention of a random peer, then read the board."""
    rng = random.Random(me.handle)
    others = [peer for peer in peers if peer.handle != me.handle]  # authors get no copy
    await asyncio.sleep(rng.uniform(0, interval))
    while True:
        target = rng.choice(others)
        body = {"body": f"@{target.handle} trying config {rng.randrange(10**6)}", "type": "note"}
        sent = time.perf_counter()
        request = me.http.post("/v1/messages", json=body)
        response = await timed(stats, "post message", request)
        if response is not None:
            stats.sent[response.json()["id"]] = sent
        await timed(stats, "read board", me.http.get("/v1/messages", params={"limit": 20}))
        await asyncio.sleep(rng.uniform(0.5 * interval, 1.5 * interval))


async def baseline(client: httpx.AsyncClient, stats: Stats, n: int = 200) -> None:
    """The ceiling: a bare GET /v1, one at a time, on the idle hub."""
    for _ in range(n):
        await timed(stats, "baseline GET /v1 (idle)", client.get("/v1"))


async def run_load(url: str, args: argparse.Namespace) -> tuple[Stats, float, int]:
    stats = Stats()
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        await baseline(client, stats)
        agents = await register_all(client, args.agents, stats, stack)
        if len(agents) < 2:
            raise SystemExit(f"only {len(agents)} agents registered: {dict(stats.errors)}")
        pollers = [asyncio.create_task(poll_inbox(a, stats, args.wait)) for a in agents]
        await asyncio.sleep(args.wait)  # warm-up: every poller has parked once
        started = time.perf_counter()
        posters = [
            asyncio.create_task(post_and_read(a, agents, stats, args.interval)) for a in agents
        ]
        await asyncio.sleep(args.duration)
        elapsed = time.perf_counter() - started
        await stop(posters)
        await settle(stats, args.grace)
        await stop(pollers)
    return stats, elapsed, len(agents)


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def settle(stats: Stats, grace_s: float) -> None:
    """Give in-flight mentions `grace_s` to arrive before counting the rest as lost."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and stats.lost():
        await asyncio.sleep(0.1)


# -- report ------------------------------------------------------------------------------------


def report(stats: Stats, elapsed: float, agents: int, args: argparse.Namespace) -> dict[str, Any]:
    stats.latency["mention delivery"] = stats.delivery_latencies()
    ops = {
        op: {
            "n": len(values),
            "p50_ms": round(percentile(values, 0.50) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        }
        for op, values in stats.latency.items()
    }
    requests = sum(
        len(v) for op, v in stats.latency.items() if op in ("post message", "read board")
    )
    return {
        "agents": agents,
        "duration_s": round(elapsed, 1),
        "interval_s": args.interval,
        "wait_s": args.wait,
        "requests_per_s": round(requests / elapsed, 1),
        "posts_per_s": round(len(stats.latency.get("post message", [])) / elapsed, 1),
        "operations": ops,
        "errors": dict(stats.errors),
        "mentions_sent": len(stats.sent),
        "mentions_lost": stats.lost(),
    }


def print_report(result: dict[str, Any]) -> None:
    print(
        f"{result['agents']} agents, {result['duration_s']} s, post interval "
        f"{result['interval_s']} s, long-poll wait {result['wait_s']} s"
    )
    print(f"throughput: {result['requests_per_s']} req/s (posts {result['posts_per_s']}/s)")
    print(f"{'operation':<28}{'n':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for op, row in result["operations"].items():
        print(f"{op:<28}{row['n']:>8}{row['p50_ms']:>10}{row['p99_ms']:>10}")
    print(f"errors: {sum(result['errors'].values())} {result['errors'] or ''}")
    print(f"mentions: {result['mentions_sent']} sent, {result['mentions_lost']} never delivered")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="An existing hub (default: start one).")
    parser.add_argument(
        "--db", help="Database of the hub it starts (default: SQLite in a temporary dir)."
    )
    parser.add_argument("--agents", type=int, default=500, help="Simulated agents.")
    parser.add_argument("--duration", type=float, default=60, help="Seconds of load.")
    parser.add_argument(
        "--interval",
        type=float,
        default=60,
        help="Mean seconds between one agent's posts (60: twice fast-gemma's 30/h cap).",
    )
    parser.add_argument("--wait", type=float, default=25, help="Long-poll wait (s).")
    parser.add_argument("--grace", type=float, default=10, help="Seconds for late mentions.")
    parser.add_argument("--json", type=Path, help="Also write the figures here as JSON.")
    args = parser.parse_args(argv)
    if not 2 <= args.agents <= MAX_AGENTS or not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--agents must be 2..{MAX_AGENTS}, --duration 0..{MAX_DURATION_S}")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.url:
        stats, elapsed, agents = await run_load(args.url.rstrip("/"), args)
        return report(stats, elapsed, agents, args)
    data_dir = Path(tempfile.mkdtemp(prefix="swarmlab-load-"))
    try:
        async with own_hub(data_dir, args.db) as url:
            stats, elapsed, agents = await run_load(url, args)
        return report(stats, elapsed, agents, args)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    result["python"] = sys.version.split()[0]
    result["cpus"] = os.cpu_count()
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
