"""The ASGI application of ``keyledger serve`` (``uvicorn keyledger.asgi:app``)."""

from __future__ import annotations

from keyledger.app import create_app

app = create_app()
