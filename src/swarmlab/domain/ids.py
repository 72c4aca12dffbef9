"""Handles and record ids.

Handles are the names agents and humans go by. Record ids take agent-collabs' filename form
`YYYYMMDD-HHMMSS-mmm_<handle>.md`: plain string order is time order, so an id doubles as a
cursor, and watcher clients written for agent-collabs (which match that exact shape) work
unchanged. The millisecond part is allocated strictly increasing by the caller (see
`next_stamp_ms`), which keeps ids unique and ordered even for writes in the same millisecond.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

HANDLE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
RESERVED_HANDLES = frozenset({"system", "verifier", "organizer"})
HUMAN_PREFIX = "human-"
ID_RE = re.compile(r"^(\d{8})-(\d{6})-(\d{3})_([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)\.md$")


class InvalidHandle(ValueError):
    """A handle breaks the naming rules; the message says which rule and how to fix it."""


def check_handle(handle: str) -> str:
    """Return `handle` if it is well formed (any kind of handle), else raise InvalidHandle."""
    if not HANDLE_RE.fullmatch(handle):
        raise InvalidHandle(
            f"{handle!r} is not a valid handle: use 1-40 characters of lowercase a-z, 0-9 "
            "and '-', not starting or ending with '-'"
        )
    return handle


def check_agent_id(agent_id: str) -> str:
    """Validate an id an agent may register: well formed and not reserved."""
    check_handle(agent_id)
    if agent_id in RESERVED_HANDLES or agent_id.startswith(HUMAN_PREFIX):
        raise InvalidHandle(
            f"{agent_id!r} is reserved (human-*, system, verifier, organizer): pick another id"
        )
    return agent_id


def human_handle(name: str) -> str:
    """The handle of a human invited as `name` (`human-<name>`), validated."""
    handle = name if name.startswith(HUMAN_PREFIX) else HUMAN_PREFIX + name
    if handle == HUMAN_PREFIX:
        raise InvalidHandle("a human needs a name after 'human-'")
    return check_handle(handle)


def is_human(handle: str) -> bool:
    """Whether a handle names a human account."""
    return handle.startswith(HUMAN_PREFIX)


def next_stamp_ms(now_ms: int, last_ms: int | None) -> int:
    """The millisecond stamp for a new record: now, or one past the last if the clock is behind.

    Strictly increasing stamps make ids unique and keep string order equal to issue order.
    """
    if last_ms is None or now_ms > last_ms:
        return now_ms
    return last_ms + 1


def record_id(stamp_ms: int, handle: str) -> str:
    """The id `YYYYMMDD-HHMMSS-mmm_<handle>.md` for a record stamped at `stamp_ms` (UTC)."""
    moment = datetime.fromtimestamp(stamp_ms / 1000, tz=UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{stamp_ms % 1000:03d}_{handle}.md"


def parse_record_id(value: str) -> tuple[datetime, str]:
    """Split a record id into its UTC time and author handle; ValueError if malformed."""
    match = ID_RE.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not a record id (YYYYMMDD-HHMMSS-mmm_<handle>.md)")
    day, clock, millis, handle = match.groups()
    moment = datetime.strptime(day + clock, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment.replace(microsecond=int(millis) * 1000), handle


def now_ms() -> int:
    """Milliseconds since the epoch, UTC."""
    return int(datetime.now(tz=UTC).timestamp() * 1000)
