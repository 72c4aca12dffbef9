"""`manifest.json`: what a submission declares, validated before anything starts.

The Fast Gemma contract (docs/harness.md): `name`, `description`, `dependencies` (pip specs),
`model_id` (hub id or a path inside the submission), `served_model_name`, `port` (default
8000), `serve` (argv run with cwd = the submission; a leading `python` is the server
environment's python) and `env` (string map for the server process only). The original
harness let a broken manifest fail mid-job; here every problem is reported up front, each
naming its field and the fix. The hub runs the same validator when a bundle is uploaded.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from swarmlab.bench.errors import ManifestError, ManifestProblem

MANIFEST_FILE = "manifest.json"
DEFAULT_PORT = 8000
PYTHON_NAMES = frozenset({"python", "python3"})
KNOWN_FIELDS = (
    "name",
    "description",
    "dependencies",
    "model_id",
    "served_model_name",
    "port",
    "serve",
    "env",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Manifest:
    """A validated manifest; `model_is_local` says whether `model_id` is a submission path."""

    model_id: str
    serve: tuple[str, ...]
    name: str = ""
    description: str = ""
    dependencies: tuple[str, ...] = ()
    served_model_name: str = ""
    port: int = DEFAULT_PORT
    env: Mapping[str, str] = field(default_factory=dict)
    model_is_local: bool = False

    @property
    def model_name(self) -> str:
        """The name requests carry in `model`: `served_model_name`, else `model_id`."""
        return self.served_model_name or self.model_id

    def to_json(self) -> dict[str, Any]:
        """The manifest as written in manifest.json, defaults filled in."""
        return {
            "name": self.name,
            "description": self.description,
            "dependencies": list(self.dependencies),
            "model_id": self.model_id,
            "served_model_name": self.served_model_name,
            "port": self.port,
            "serve": list(self.serve),
            "env": dict(self.env),
        }


def load_manifest(submission: Path) -> Manifest:
    """Read and validate `<submission>/manifest.json`; raise ManifestError listing every problem."""
    path = submission / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(
            [
                ManifestProblem(
                    MANIFEST_FILE, f"not found in {submission}; add one (see docs/harness.md)"
                )
            ]
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(
            [ManifestProblem(MANIFEST_FILE, f"is not valid JSON ({exc}); fix the syntax")]
        ) from exc
    return parse_manifest(data, submission)


def parse_manifest(data: object, submission: Path | None = None) -> Manifest:
    """Validate manifest data. With `submission`, paths are checked against that folder too."""
    if not isinstance(data, dict):
        raise ManifestError(
            [
                ManifestProblem(
                    "(top level)", "must be a JSON object of fields (model_id, serve, ...)"
                )
            ]
        )
    problems = _unknown_fields(data)
    checks = (
        _text(data, "name"),
        _text(data, "description"),
        _text(data, "served_model_name"),
        _dependencies(data, submission),
        _port(data),
        _serve(data, submission),
        _env(data),
        _model_id(data, submission),
    )
    for found in checks:
        problems.extend(found)
    if problems:
        raise ManifestError(problems)
    return _build(data, submission)


def _build(data: dict[str, Any], submission: Path | None) -> Manifest:
    model_id = data["model_id"]
    return Manifest(
        model_id=model_id,
        serve=tuple(data["serve"]),
        name=data.get("name", ""),
        description=data.get("description", ""),
        dependencies=tuple(data.get("dependencies", [])),
        served_model_name=data.get("served_model_name", ""),
        port=data.get("port", DEFAULT_PORT),
        env=dict(data.get("env", {})),
        model_is_local=_is_local_model(model_id, submission),
    )


def _unknown_fields(data: dict[str, Any]) -> list[ManifestProblem]:
    problems = []
    for key in data:
        if key in KNOWN_FIELDS:
            continue
        close = difflib.get_close_matches(str(key), KNOWN_FIELDS, n=1)
        hint = (
            f"did you mean `{close[0]}`?" if close else f"known fields: {', '.join(KNOWN_FIELDS)}"
        )
        problems.append(ManifestProblem(str(key), f"unknown field; {hint}"))
    return problems


def _text(data: dict[str, Any], name: str) -> list[ManifestProblem]:
    value = data.get(name, "")
    if isinstance(value, str):
        return []
    return [ManifestProblem(name, f"must be a string, got {type(value).__name__}")]


def _port(data: dict[str, Any]) -> list[ManifestProblem]:
    port = data.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int):
        return [ManifestProblem("port", f"must be an integer such as 8000, got {port!r}")]
    if not 1 <= port <= 65535:
        return [ManifestProblem("port", f"{port} is not a TCP port; use 1-65535 (default 8000)")]
    return []


def _string_list(data: dict[str, Any], name: str, example: str) -> list[str] | ManifestProblem:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return ManifestProblem(name, f"must be a list of non-empty strings, e.g. {example}")
    return value


def _dependencies(data: dict[str, Any], submission: Path | None) -> list[ManifestProblem]:
    specs = _string_list(data, "dependencies", '["vllm==0.22.0"]')
    if isinstance(specs, ManifestProblem):
        return [specs]
    return [
        ManifestProblem("dependencies", problem)
        for spec in specs
        if (problem := _path_problem(spec, submission, must_exist=False))
    ]


def _serve(data: dict[str, Any], submission: Path | None) -> list[ManifestProblem]:
    if "serve" not in data:
        return [
            ManifestProblem(
                "serve",
                'missing; add the command that starts your server, e.g. ["python", "serve.py"]',
            )
        ]
    argv = _string_list(data, "serve", '["python", "serve.py"]')
    if isinstance(argv, ManifestProblem):
        return [argv]
    if not argv:
        return [ManifestProblem("serve", 'is empty; give the command, e.g. ["python", "serve.py"]')]
    script_at = 1 if argv[0] in PYTHON_NAMES and len(argv) > 1 else None
    problems = []
    for index, arg in enumerate(argv):
        problem = _path_problem(arg, submission, must_exist=index == script_at)
        if problem:
            problems.append(ManifestProblem("serve", problem))
    return problems


def _env(data: dict[str, Any]) -> list[ManifestProblem]:
    env = data.get("env", {})
    if not isinstance(env, dict):
        return [
            ManifestProblem("env", 'must be an object of strings, e.g. {"MAX_MODEL_LEN": "4096"}')
        ]
    problems = []
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            problems.append(
                ManifestProblem(f"env.{key}", "is not a valid environment variable name")
            )
        elif not isinstance(value, str):
            problems.append(
                ManifestProblem(f"env.{key}", f"must be a string; write {json.dumps(str(value))}")
            )
    return problems


def _model_id(data: dict[str, Any], submission: Path | None) -> list[ManifestProblem]:
    if "model_id" not in data:
        return [
            ManifestProblem(
                "model_id", "missing; give a hub id (org/name) or a path inside the submission"
            )
        ]
    model_id = data["model_id"]
    if not isinstance(model_id, str) or not model_id:
        return [ManifestProblem("model_id", "must be a non-empty string")]
    if problem := _path_problem(model_id, submission, must_exist=False):
        return [ManifestProblem("model_id", problem)]
    if (
        model_id.startswith("./")
        and submission is not None
        and not (submission / model_id).is_dir()
    ):
        return [ManifestProblem("model_id", f"{model_id!r} is not a folder in the submission")]
    if _is_local_model(model_id, submission) or _HUB_ID.match(model_id):
        return []
    return [
        ManifestProblem(
            "model_id",
            f"{model_id!r} is neither a folder in the submission (write ./{model_id}) "
            "nor a hub id like org/name",
        )
    ]


def _is_local_model(model_id: str, submission: Path | None) -> bool:
    if model_id.startswith("./"):
        return True
    return submission is not None and (submission / model_id).is_dir()


def _path_problem(value: str, submission: Path | None, *, must_exist: bool) -> str | None:
    """Why a path-like argument is unacceptable, or None. Non-paths (flags, specs) pass."""
    pure = PurePosixPath(value)
    if ".." in pure.parts:
        return f"{value!r} escapes the submission folder; keep every path inside it"
    if pure.is_absolute() and must_exist:
        return f"{value!r} is absolute; use a path relative to the submission folder"
    if must_exist and submission is not None and not (submission / value).is_file():
        return f"{value!r} does not exist in the submission; add it or fix the path"
    if submission is not None and not pure.is_absolute():
        resolved = (submission / value).resolve()
        if (submission / value).exists() and not resolved.is_relative_to(submission.resolve()):
            return f"{value!r} links outside the submission folder; copy the file in instead"
    return None
