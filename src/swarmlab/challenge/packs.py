"""Finding and loading challenge packs (`challenges/<name>/challenge.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from swarmlab.challenge.spec import ChallengeSpec

SPEC_FILE = "challenge.yaml"


class ChallengeError(Exception):
    """A challenge pack is missing or its challenge.yaml is invalid; the message says the fix."""


@dataclass(frozen=True)
class ChallengePack:
    """A validated spec together with the folder its relative paths resolve against."""

    spec: ChallengeSpec
    root: Path

    def path(self, relative: str) -> Path:
        """Resolve a path named in the spec; it must stay inside the pack."""
        resolved = (self.root / relative).resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise ChallengeError(f"{relative!r} points outside the pack {self.root}")
        return resolved

    @property
    def rules_text(self) -> str:
        """The rules: inline text, then the rules file's text if one is named."""
        parts = [self.spec.rules.strip()]
        if self.spec.rules_file:
            parts.append(self.path(self.spec.rules_file).read_text(encoding="utf-8").strip())
        return "\n\n".join(p for p in parts if p)


def pack_search_path() -> list[Path]:
    """Where named packs are looked up: ./challenges, then the packs shipped with swarmlab."""
    here = Path(__file__).resolve()
    return [
        Path.cwd() / "challenges",
        here.parent.parent / "_challenges",  # installed wheel
        here.parents[3] / "challenges",  # source checkout (src/swarmlab/challenge/packs.py)
    ]


def available_packs() -> list[str]:
    """Names of every pack on the search path."""
    names = {
        p.parent.name
        for root in pack_search_path()
        if root.is_dir()
        for p in root.glob(f"*/{SPEC_FILE}")
    }
    return sorted(names)


def find_pack(path_or_name: str) -> Path:
    """A pack folder from a path (folder or challenge.yaml) or a pack name."""
    candidate = Path(path_or_name)
    if candidate.is_file():
        return candidate.parent
    if (candidate / SPEC_FILE).is_file():
        return candidate
    for root in pack_search_path():
        if (root / path_or_name / SPEC_FILE).is_file():
            return root / path_or_name
    known = ", ".join(available_packs()) or "none found"
    raise ChallengeError(
        f"no challenge pack {path_or_name!r}: give a folder holding {SPEC_FILE}, "
        f"or one of the packs on the search path ({known})"
    )


def _format_errors(source: Path, error: ValidationError) -> str:
    lines = [f"{source} is not a valid challenge spec:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  - {where}: {item['msg']}")
    lines.append("Fix these fields (docs/challenges.md lists every field with its default).")
    return "\n".join(lines)


def load_challenge(path_or_name: str) -> ChallengePack:
    """Load and validate a pack; raise ChallengeError naming every bad field."""
    root = find_pack(path_or_name)
    source = root / SPEC_FILE
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ChallengeError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ChallengeError(f"{source} must be a mapping of fields (name, title, scoring, ...)")
    try:
        spec = ChallengeSpec.model_validate(raw)
    except ValidationError as exc:
        raise ChallengeError(_format_errors(source, exc)) from exc
    return ChallengePack(spec=spec, root=root)
