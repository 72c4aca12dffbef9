"""How much time does the harness's own client add to each timed request?

Starts a bare endpoint (tests/bench/fake_server.py, a stdlib HTTP server answering at once)
as a separate process, then times the same chat-completion request three ways:

1. `raw`: the standard library's http.client on a kept-alive connection (the floor: socket,
   HTTP framing and the server's own time);
2. `harness`: swarmlab's EndpointClient.post, exactly as the speed stage sends it;
3. `stage`: the whole speed stage (run_speed), whose `harness_gap_s` is the harness's work
   between timed requests (JSON decoding, writing benchmark.jsonl, progress, checks).

Client overhead per request = harness - raw (medians). It is compared with the time a request
takes in the real challenge: 512 tokens at 420 tok/s (the original's top verified score) is
1.22 s, so an overhead of 0.1 ms is under 0.01% of a request.

Usage: python benchmarks/harness_overhead.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from swarmlab.bench.client import EndpointClient
from swarmlab.bench.inputs import Prompt
from swarmlab.bench.runlog import RunLog
from swarmlab.bench.speed import chat_payload, run_speed
from swarmlab.bench.stage import StageContext

ROOT = Path(__file__).resolve().parents[1]
FAKE_SERVER = ROOT / "tests" / "bench" / "fake_server.py"
OUTPUT_LEN = 16
TOP_TPS = 420.0  # the original challenge's top verified score (reference doc)


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PORT": str(port), "SERVED_MODEL_NAME": "bare"}
    proc = subprocess.Popen([sys.executable, str(FAKE_SERVER)], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the bare endpoint did not start")


def time_raw(port: int, payload: bytes, requests: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", payload, {"Content-Type": "application/json"})
        conn.getresponse().read()
        samples.append(time.perf_counter() - started)
    conn.close()
    return samples


def time_harness(client: EndpointClient, payload: dict[str, object], requests: int) -> list[float]:
    return [client.post("/v1/chat/completions", payload).seconds for _ in range(requests)]


def stage_gap(client: EndpointClient, requests: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        log = RunLog(Path(tmp) / "server.log")
        ctx = StageContext(client, Path(tmp), log, lambda done, total: None, lambda: None)
        metrics = run_speed(ctx, [Prompt("p", "hello")], requests, OUTPUT_LEN, warmup=0)
        log.close()
    return float(metrics["harness_gap_s"]) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    from tests.fixtures.services import free_port

    port = free_port()
    server = start_server(port)
    try:
        payload = chat_payload("bare", "hello", OUTPUT_LEN)
        client = EndpointClient(f"http://127.0.0.1:{port}", "bare", timeout_s=lambda: 30.0)
        time_raw(port, json.dumps(payload).encode(), 200)  # warm both paths up
        time_harness(client, payload, 200)
        raw = time_raw(port, json.dumps(payload).encode(), args.requests)
        harness = time_harness(client, payload, args.requests)
        gap = stage_gap(client, args.requests)
        client.close()
    finally:
        server.terminate()
        server.wait()
    report(args.requests, raw, harness, gap)


def report(requests: int, raw: list[float], harness: list[float], gap: float) -> None:
    us = 1e6
    raw_med, harness_med = statistics.median(raw), statistics.median(harness)
    overhead = harness_med - raw_med
    request_s = 512 / TOP_TPS
    print(f"requests per path: {requests}")
    print(
        f"raw http.client   median {raw_med * us:8.1f} us   mean {statistics.mean(raw) * us:8.1f} us"
    )
    print(
        f"harness client    median {harness_med * us:8.1f} us   mean {statistics.mean(harness) * us:8.1f} us"
    )
    print(f"client overhead   median {overhead * us:8.1f} us per request (harness - raw)")
    print(f"stage gap         mean   {gap * us:8.1f} us per request (between timed requests)")
    share = (overhead + gap) / request_s * 100
    print(
        f"vs a 512-token request at {TOP_TPS:.0f} tok/s ({request_s:.2f} s): {share:.4f}% of its time"
    )


if __name__ == "__main__":
    main()
