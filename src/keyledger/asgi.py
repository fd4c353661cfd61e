"""The ASGI application of ``keyledger serve`` (``uvicorn keyledger.asgi:app``)."""

from __future__ import annotations

import gc

from keyledger.web.app import create_app

app = create_app()

# Everything built so far (FastAPI, pydantic and SQLAlchemy structures) lives as long as the
# process: moving it out of the collector's reach cut full collections from ~75 ms to ~8 ms, which
# were the slowest door checks under load (benchmarks/README.md).
gc.freeze()
