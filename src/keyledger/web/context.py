"""What every request handler needs, built once per process by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from keyledger.domain.callers.cache import CallerCache
from keyledger.domain.callers.users import PasswordCache, PasswordVerifier
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.writer import GroupWriter
from keyledger.web.auth_throttle import FailedAuthThrottle
from keyledger.web.ratelimit import Limit, RateLimiter


@dataclass(slots=True)
class AppContext:
    settings: Settings
    store: Store
    rate_limiter: RateLimiter
    mews_limit: Limit
    nexudus_limit: Limit
    password_cache: PasswordCache
    password_verifier: PasswordVerifier
    caller_cache: CallerCache
    writer: GroupWriter
    auth_throttle: FailedAuthThrottle


async def get_context(request: Request) -> AppContext:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request.
    context = request.app.state.context
    assert isinstance(context, AppContext)
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


# Narrower dependencies: an endpoint that needs only one part says which.
async def get_store(context: ContextDep) -> Store:
    return context.store


async def get_settings(context: ContextDep) -> Settings:
    return context.settings


async def get_writer(context: ContextDep) -> GroupWriter:
    return context.writer


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WriterDep = Annotated[GroupWriter, Depends(get_writer)]


def client_address(request: Request) -> str | None:
    """The peer's address; a trusted proxy's ``X-Forwarded-For`` client only when the peer is one
    of ``KEYLEDGER_TRUSTED_PROXIES`` (uvicorn's ProxyHeadersMiddleware, added by ``create_app``)."""
    return request.client.host if request.client else None
