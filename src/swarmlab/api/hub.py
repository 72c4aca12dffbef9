"""The hub's runtime context: everything a request handler needs, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from swarmlab.api.notifier import Notifier, QuietPage, WatchMarks
from swarmlab.api.settings import HubSettings
from swarmlab.challenge import ChallengePack, ChallengeSpec
from swarmlab.db import Database
from swarmlab.storage import BlobStore


@dataclass
class Hub:
    """Settings, challenge, database, blob store and notifier of one running hub."""

    settings: HubSettings
    pack: ChallengePack
    db: Database
    blobs: BlobStore
    notifier: Notifier
    watch_marks: WatchMarks = field(default_factory=WatchMarks)
    # Empty long-poll pages by (handle, stream); touched only on the event loop's thread.
    quiet_pages: dict[tuple[str, str], QuietPage] = field(default_factory=dict)

    @property
    def spec(self) -> ChallengeSpec:
        """The challenge this hub runs."""
        return self.pack.spec


def get_hub(request: Request) -> Hub:
    """FastAPI dependency: the hub serving this request."""
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]
