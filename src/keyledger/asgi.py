"""The ASGI application of ``keyledger serve`` (``uvicorn keyledger.asgi:app``).

Each worker also serves RADIUS (``keyledger.radius``) for as long as the application runs: its
listeners start and stop with the application's lifespan, on the worker's store and group
writer."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from keyledger.radius.server import RadiusServer
from keyledger.web.app import create_app
from keyledger.web.context import AppContext

app = create_app()


@asynccontextmanager
async def _lifespan(_: Any) -> AsyncIterator[None]:
    context = app.state.context
    assert isinstance(context, AppContext)
    host = context.settings.radius_host or "127.0.0.1"
    radius = RadiusServer(context.settings, context.store, context.writer, host=host)
    await radius.start()
    try:
        yield
    finally:
        await radius.stop()


app.router.lifespan_context = _lifespan

# Everything built so far (FastAPI, pydantic and SQLAlchemy structures) lives as long as the
# process: moving it out of the collector's reach cut full collections from ~75 ms to ~8 ms, which
# were the slowest door checks under load (benchmarks/README.md).
gc.freeze()
