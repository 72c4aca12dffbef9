"""The hub's FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from swarmlab import __version__
from swarmlab.api.errors import install_error_handlers
from swarmlab.api.hub import Hub
from swarmlab.api.jobs_runtime import install_jobs
from swarmlab.api.middleware import WriteMiddleware
from swarmlab.api.notifier import Notifier
from swarmlab.api.routers import ROUTERS
from swarmlab.api.services.record import newest_event_id
from swarmlab.api.services.watch import flush_watchers
from swarmlab.api.settings import HubSettings
from swarmlab.challenge import ChallengePack, load_challenge
from swarmlab.db import Database, upgrade
from swarmlab.storage import BlobStore

log = logging.getLogger("swarmlab.api")


async def _recheck_until(stop: asyncio.Event, hub: Hub) -> None:
    """Wake parked long-polls when another hub process wrote to the shared database, and
    write the wait-polls noted in memory to the `watchers` table."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=hub.settings.recheck_s)
            return
        try:
            newest = await run_in_threadpool(newest_event_id, hub.db)
            await run_in_threadpool(flush_watchers, hub)
        except Exception:  # a database hiccup must not end the loop; the next pass retries
            log.warning("re-check of the database failed", exc_info=True)
            continue
        hub.notifier.recheck(newest)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Bind the notifier to the serving loop and run the cross-process re-check."""
    hub: Hub = app.state.hub
    hub.notifier.bind(asyncio.get_running_loop())
    stop = asyncio.Event()
    task = asyncio.create_task(_recheck_until(stop, hub))
    try:
        yield
    finally:
        stop.set()
        await task  # let an in-flight query finish so its connection goes back to the pool
        await run_in_threadpool(flush_watchers, hub)
        hub.db.dispose()


def build_hub(settings: HubSettings, pack: ChallengePack | None = None) -> Hub:
    """Open the database (migrated to head) and the blob store for `settings`."""
    db = Database(settings.db)
    upgrade(db)
    notifier = Notifier()
    notifier.seen_event_id = newest_event_id(db)
    return Hub(
        settings=settings,
        pack=pack or load_challenge(settings.challenge),
        db=db,
        blobs=BlobStore(settings.blobs),
        notifier=notifier,
    )


def create_app(
    settings: HubSettings | None = None, *, pack: ChallengePack | None = None
) -> FastAPI:
    """A hub application: migrations applied, routers mounted, errors in one envelope."""
    hub = build_hub(settings or HubSettings(), pack)
    app = FastAPI(
        title=f"swarmlab hub: {hub.spec.title}",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    install_error_handlers(app)
    app.add_middleware(WriteMiddleware, hub=hub)
    for router in ROUTERS:
        app.include_router(router)
    install_jobs(app)
    return app
