#!/usr/bin/env python3
"""A stand-in for `nvidia-smi`, for rehearsing benchmarks/gpu_pool.py on a machine without GPUs.

It answers the three queries gpu_pool.py makes. Each `swarmlab engine serve` process is listed
as a compute app "on" the GPU that its own environment's CUDA_VISIBLE_DEVICES names, read from
/proc by this separate process: so the benchmark's `smi` column shows the pinning as the
operating system sees it, not as the benchmark recorded it.

    mkdir -p /tmp/fake-bin && ln -sf "$PWD/benchmarks/fake_nvidia_smi.py" /tmp/fake-bin/nvidia-smi
    PATH=/tmp/fake-bin:$PATH python benchmarks/gpu_pool.py ... --visible 4,5
"""

from __future__ import annotations

import sys
from pathlib import Path

DEVICES = 8


def server_devices() -> list[tuple[str, str]]:
    """(pid, CUDA_VISIBLE_DEVICES) of every engine server this user can inspect."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes()
            environment = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"swarmlab.engine\0serve" not in command:
            continue
        visible = [
            e.split(b"=", 1)[1] for e in environment if e.startswith(b"CUDA_VISIBLE_DEVICES=")
        ]
        if visible:
            found.append((proc.name, visible[0].decode()))
    return found


def main() -> None:
    query = " ".join(sys.argv[1:])
    if "--query-gpu=uuid,index" in query:
        print("\n".join(f"GPU-fake-{i}, {i}" for i in range(DEVICES)))
    elif "--query-compute-apps" in query:
        print("\n".join(f"{pid}, GPU-fake-{device}, 1" for pid, device in server_devices()))
    elif "--query-gpu" in query:
        print("\n".join(f"{i}, fake GPU, 0 MiB" for i in range(DEVICES)))


if __name__ == "__main__":
    main()
