"""manifest.json validation: every problem named with its field and fix, before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from swarmlab.bench.errors import ManifestError
from swarmlab.bench.manifest import load_manifest, parse_manifest


def submission(tmp_path: Path, manifest: object, files: tuple[str, ...] = ("serve.py",)) -> Path:
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (tmp_path / "manifest.json").write_text(text, encoding="utf-8")
    return tmp_path


def valid(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "vllm-baseline",
        "dependencies": ["vllm==0.22.0"],
        "model_id": "google/gemma-4-E4B-it",
        "served_model_name": "gemma-4-e4b-it",
        "port": 8000,
        "serve": ["python", "serve.py"],
        "env": {"MAX_MODEL_LEN": "4096"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def problems_of(tmp_path: Path, manifest: object) -> dict[str, str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(submission(tmp_path, manifest))
    return {p.field: p.message for p in caught.value.problems}


def test_original_challenge_manifest_loads(tmp_path: Path) -> None:
    manifest = load_manifest(submission(tmp_path, valid()))
    assert manifest.serve == ("python", "serve.py")
    assert manifest.model_name == "gemma-4-e4b-it"
    assert not manifest.model_is_local
    assert manifest.env == {"MAX_MODEL_LEN": "4096"}
    assert manifest.to_json()["dependencies"] == ["vllm==0.22.0"]


def test_defaults_fill_optional_fields(tmp_path: Path) -> None:
    manifest = load_manifest(
        submission(tmp_path, {"model_id": "org/m", "serve": ["python", "serve.py"]})
    )
    assert manifest.port == 8000
    assert manifest.dependencies == ()
    assert manifest.model_name == "org/m"


def test_local_model_folder_is_recognised(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    manifest = load_manifest(submission(tmp_path, valid(model_id="weights")))
    assert manifest.model_is_local


def test_missing_serve_names_the_field_and_the_fix(tmp_path: Path) -> None:
    found = problems_of(tmp_path, valid(serve=None))
    assert "serve" in found
    assert '["python", "serve.py"]' in found["serve"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"port": "8000"}, "port", "integer"),
        ({"port": 70000}, "port", "1-65535"),
        ({"port": True}, "port", "integer"),
        ({"dependencies": "vllm"}, "dependencies", "list"),
        ({"serve": []}, "serve", "empty"),
        ({"serve": "python serve.py"}, "serve", "list"),
        ({"env": {"MAX_MODEL_LEN": 4096}}, "env.MAX_MODEL_LEN", '"4096"'),
        ({"env": {"BAD-NAME": "1"}}, "env.BAD-NAME", "variable name"),
        ({"name": 3}, "name", "string"),
        ({"model_id": "../other"}, "model_id", "escapes"),
        ({"model_id": "./weights"}, "model_id", "not a folder"),
        ({"model_id": "just-a-name"}, "model_id", "hub id"),
        ({"serve": ["python", "../serve.py"]}, "serve", "escapes"),
        ({"serve": ["python", "missing.py"]}, "serve", "does not exist"),
        ({"dependencies": ["../wheels/x.whl"]}, "dependencies", "escapes"),
        ({"sevre": ["python", "serve.py"]}, "sevre", "did you mean `serve`"),
    ],
)
def test_bad_fields_are_named(
    tmp_path: Path, change: dict[str, Any], field: str, words: str
) -> None:
    found = problems_of(tmp_path, valid(**change))
    assert field in found, found
    assert words in found[field]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems_of(tmp_path, {"port": "x", "env": [], "extra": 1})
    assert {"port", "env", "extra", "serve", "model_id"} <= set(found)


def test_symlink_out_of_the_submission_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    inside = tmp_path / "sub"
    inside.mkdir()
    (inside / "weights").symlink_to(outside, target_is_directory=True)
    found = problems_of(inside, valid(model_id="weights"))
    assert "outside the submission" in found["model_id"]


@pytest.mark.parametrize(
    ("text", "words"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")]
)
def test_unparsable_manifest(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ManifestError, match=words):
        load_manifest(submission(tmp_path, text))


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path)


def test_parse_without_a_folder_checks_shapes_only() -> None:
    manifest = parse_manifest(valid(serve=["python", "anything.py"]))
    assert manifest.serve[1] == "anything.py"


EXAMPLES = Path(__file__).resolve().parents[2] / "challenges" / "fast-gemma" / "examples"


def test_vllm_example_manifest_is_valid() -> None:
    manifest = load_manifest(EXAMPLES / "vllm")
    assert manifest.model_id == "google/gemma-4-E4B-it"
    assert not manifest.model_is_local
    assert manifest.env["MAX_NUM_BATCHED_TOKENS"] == "512"


def test_reference_example_needs_its_model_folder(tmp_path: Path) -> None:
    copy = tmp_path / "reference"
    shutil.copytree(EXAMPLES / "reference", copy)
    with pytest.raises(ManifestError, match="not a folder in the submission"):
        load_manifest(copy)
    (copy / "model").mkdir()
    manifest = load_manifest(copy)
    assert manifest.model_is_local
    assert manifest.dependencies == ()
