"""What every request handler needs, built once per process by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from keyledger.callers.users import PasswordCache
from keyledger.ratelimit import Limit, RateLimiter
from keyledger.settings import Settings
from keyledger.store import Store


@dataclass(slots=True)
class AppContext:
    settings: Settings
    store: Store
    rate_limiter: RateLimiter
    mews_limit: Limit
    nexudus_limit: Limit
    password_cache: PasswordCache


def get_context(request: Request) -> AppContext:
    context = request.app.state.context
    assert isinstance(context, AppContext)
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]
