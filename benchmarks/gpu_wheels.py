"""Which wheels the GPU machine needs to run the hub and a Celery worker, and whether a set of
downloaded wheels is complete. Used by benchmarks/gpu_pool_prepare.sh.

The GPU machine's image (Python 3.12) has torch, transformers, httpx, typer, rich, jinja2 and
pyyaml but not the hub's or Celery's stack, and it cannot reach a package index. So:

    python benchmarks/gpu_wheels.py needed        # NAME==VERSION per missing distribution
    python benchmarks/gpu_wheels.py check DIR     # every Requires-Dist of every wheel in DIR met?

`needed` walks the requirements of ROOTS through the distributions installed here (their exact
versions, so the GPU machine runs what the tests here ran), evaluated for CPython 3.12 on
x86-64 Linux, and leaves out what the image already has. `check` reads each wheel's METADATA
and fails naming every requirement that neither another wheel nor the image provides, and any
distribution present in two versions (pip would refuse to install the set).
"""

from __future__ import annotations

import re
import sys
import zipfile
from email.parser import Parser
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOTS = ("fastapi", "uvicorn", "pydantic", "pydantic-settings", "sqlalchemy", "alembic")
ROOTS += ("celery", "redis", "fsspec", "typing-extensions")
# Carried although the image has them: newer typing-extensions is backward compatible, and
# pydantic-core needs a recent one.
ALWAYS_CARRY = {"typing-extensions"}
TARGET = default_environment() | {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
# The 'cuda' image's Python distributions (the device library's KINDS.md, read 2026-11-17).
IMAGE = Path(__file__).with_name("gpu_image_packages.txt")


def image_packages() -> set[str]:
    names = IMAGE.read_text(encoding="utf-8").split()
    return {canonicalize_name(name) for name in names} - ALWAYS_CARRY


def applies(requirement: Requirement, extras: tuple[str, ...] = ("",)) -> bool:
    """True when the requirement holds on the target with the given extras."""
    marker = requirement.marker
    return marker is None or any(marker.evaluate(TARGET | {"extra": e}) for e in extras)


def needed() -> dict[str, str]:
    """name -> installed version for the closure of ROOTS that the image lacks."""
    have = image_packages()
    found: dict[str, str] = {}
    todo = [Requirement(root) for root in ROOTS]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found or (name in have and name not in ALWAYS_CARRY):
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            sys.exit(f"{name} is not installed here: pip install it, then run this again")
        found[name] = dist.version
        extras = ("", *requirement.extras)
        requires = [Requirement(line) for line in dist.requires or ()]
        todo.extend(r for r in requires if applies(r, extras))
    return found


def wheel_metadata(path: Path) -> tuple[str, str, list[Requirement]]:
    with zipfile.ZipFile(path) as wheel:
        name = next(n for n in wheel.namelist() if re.match(r"[^/]+\.dist-info/METADATA$", n))
        meta = Parser().parsestr(wheel.read(name).decode("utf-8"))
    requires = [Requirement(line) for line in meta.get_all("Requires-Dist") or ()]
    return canonicalize_name(meta["Name"]), meta["Version"], requires


def check(folder: Path) -> list[str]:
    """Problems of the wheel set in ``folder`` (empty when complete)."""
    wheels = [wheel_metadata(path) for path in sorted(folder.glob("*.whl"))]
    versions: dict[str, list[str]] = {}
    for name, version, _ in wheels:
        versions.setdefault(name, []).append(version)
    problems = [f"{n}: two versions {v}" for n, v in versions.items() if len(v) > 1]
    provided = set(versions) | image_packages()
    for name, version, requires in wheels:
        for requirement in requires:
            if applies(requirement) and canonicalize_name(requirement.name) not in provided:
                problems.append(f"{name} {version} needs {requirement}, which nothing provides")
            elif canonicalize_name(requirement.name) in versions and applies(requirement):
                have = versions[canonicalize_name(requirement.name)][0]
                if not requirement.specifier.contains(have, prereleases=True):
                    problems.append(f"{name} {version} needs {requirement}, the set has {have}")
    return problems


def main() -> int:
    if sys.argv[1:2] == ["needed"]:
        print("\n".join(f"{n}=={v}" for n, v in sorted(needed().items())))
        return 0
    if sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        problems = check(Path(sys.argv[2]))
        print(
            "\n".join(problems) or f"complete: {len(list(Path(sys.argv[2]).glob('*.whl')))} wheels"
        )
        return 1 if problems else 0
    print("usage: gpu_wheels.py needed | check DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
