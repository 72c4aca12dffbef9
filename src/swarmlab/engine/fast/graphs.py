"""CUDA-graph capture, replay timing and host wall timing, shared by the runner, the fused
step's tile tuner and the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch


def capture_graph(body: Callable[[], object]) -> torch.cuda.CUDAGraph:
    """Warm `body` up on a side stream (allocator, autotuning), then capture it."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            body()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    return graph


def replay_seconds(graph: torch.cuda.CUDAGraph, repeats: int = 7) -> float:
    """Median seconds of one replay of `graph`, timed with CUDA events."""
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return sorted(times)[len(times) // 2]


def graph_ms(launches: Sequence[Callable[[], object]], repeats: int = 7) -> float:
    """Median milliseconds of one replay of a CUDA graph holding `launches` in order."""

    def body() -> None:
        for launch in launches:
            launch()

    return replay_seconds(capture_graph(body), repeats) * 1e3


def wall_ms(body: Callable[[], object], repeats: int = 50) -> float:
    """Median host milliseconds of `body`, the device drained before and after each call (so
    host reads and Python work inside it count), after 5 untimed calls."""
    times = []
    for _ in range(repeats + 5):
        torch.cuda.synchronize()
        began = time.perf_counter()
        body()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    return statistics.median(times[5:]) * 1e3
