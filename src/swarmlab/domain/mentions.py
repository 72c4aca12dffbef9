"""Who a message reaches: `@handle` mentions and the authors of the messages it replies to."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_RECIPIENTS = 10
# A mention starts a word (not inside an e-mail address) and ends where a handle must end.
MENTION_RE = re.compile(r"(?<![\w@.-])@([a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?)(?![a-z0-9-])")


def parse_mentions(body: str) -> list[str]:
    """Handles mentioned in `body`, in order of first appearance, without duplicates."""
    seen: dict[str, None] = {}
    for match in MENTION_RE.finditer(body):
        seen.setdefault(match.group(1), None)
    return list(seen)


def recipients(
    author: str,
    mentioned: Iterable[str],
    ref_authors: Iterable[str],
    known: Iterable[str],
) -> list[str]:
    """Inbox recipients: mentioned handles, then authors of refs; registered only, author excluded.

    At most MAX_RECIPIENTS, so a message cannot spam the whole hub (organizers broadcast instead).
    """
    registered = set(known)
    chosen: dict[str, None] = {}
    for handle in [*mentioned, *ref_authors]:
        if handle != author and handle in registered:
            chosen.setdefault(handle, None)
    return list(chosen)[:MAX_RECIPIENTS]
