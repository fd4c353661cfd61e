"""The application factory. Only ``keyledger.asgi`` calls it at import time."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from limits.aio.storage import MemoryStorage
from swagger_ui_bundle import swagger_ui_path
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from keyledger import __version__
from keyledger.domain.callers.cache import CallerCache
from keyledger.domain.callers.permissions import check_covered
from keyledger.domain.callers.users import PasswordCache, PasswordVerifier, auth_failures_epoch
from keyledger.kit.settings import Settings, get_settings
from keyledger.observability.logging import configure_logging
from keyledger.store import Store
from keyledger.store.writer import GroupWriter
from keyledger.web.api import router as api
from keyledger.web.auth_throttle import FailedAuthThrottle
from keyledger.web.context import AppContext
from keyledger.web.mews import router as mews
from keyledger.web.middleware import RequestObserver
from keyledger.web.nexudus import router as nexudus
from keyledger.web.operations import router as operations
from keyledger.web.ratelimit import Limit, RateLimiter, build_storage

DESCRIPTION = """\
keyledger keeps door PINs, RFID tags and Wi-Fi vouchers in one credential store and serves them
through the dialects of the Mews Connector API (resource access tokens) and the Nexudus Spaces API
(access tokens). Every response carries a `Request-Id` header.
"""


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    store = store or Store(settings)
    storage = build_storage(
        settings.redis_url, settings.redis_key_prefix, timeout_ms=settings.redis_timeout_ms
    )
    # While Redis fails (down, or late past redis_timeout_ms, as when a flood of requests keeps
    # this worker's loop busy) the rate limits and the failed-authentication brake count in this
    # worker's memory instead of letting every request through (docs/reliability.md).
    limiter = RateLimiter(
        storage,
        pause_seconds=settings.redis_pause_seconds,
        fallback=MemoryStorage() if settings.redis_url else None,
    )
    brake_limiter = RateLimiter(
        storage,
        pause_seconds=settings.redis_pause_seconds,
        fallback=MemoryStorage() if settings.redis_url else None,
    )
    verifier = PasswordVerifier(
        settings.password_check_threads,
        queue=settings.password_check_queue,
        narrow_queue=settings.password_check_narrow_queue,
    )
    context = AppContext(
        settings=settings,
        store=store,
        rate_limiter=limiter,
        mews_limit=Limit("mews", settings.mews_rate_limit, settings.mews_rate_window_seconds),
        nexudus_limit=Limit(
            "nexudus", settings.nexudus_rate_limit, settings.nexudus_rate_window_seconds
        ),
        password_cache=PasswordCache(settings.password_cache_seconds),
        password_verifier=verifier,
        caller_cache=CallerCache(settings.auth_cache_seconds),
        writer=GroupWriter(store),
        auth_throttle=FailedAuthThrottle(
            brake_limiter,
            per_pair=Limit(
                "auth-pair", settings.auth_failures_per_caller, settings.auth_failure_window_seconds
            ),
            per_account=Limit(
                "auth-account",
                settings.auth_failures_per_account,
                settings.auth_failure_window_seconds,
            ),
            per_address=Limit(
                "auth-address",
                settings.auth_failures_per_address,
                settings.auth_failure_window_seconds,
            ),
            epoch_of=lambda email: auth_failures_epoch(store, email),
            narrowed=verifier.narrowed,
        ),
    )
    app = FastAPI(
        title="keyledger",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # served below from the package's own copy of Swagger UI, not a CDN
        redoc_url=None,
    )
    add_swagger_ui(app)
    app.router.redirect_slashes = False
    app.state.context = context
    app.include_router(mews.router)
    app.include_router(mews.unknown_router)
    app.include_router(nexudus.router)
    app.include_router(nexudus.token_router)
    app.include_router(nexudus.unknown_router)
    app.include_router(api.router)
    app.include_router(api.unknown_router)
    app.include_router(operations)
    app.add_middleware(RequestObserver)
    check_covered(
        getattr(route, "operation_id", None) for route in (*mews.router.routes, *api.router.routes)
    )
    if settings.trusted_proxy_list:
        # Outermost, so the log line and every handler see the client the proxy names. Only
        # from these peers; `serve` turns uvicorn's own (which trusts 127.0.0.1) off.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


#: Where Swagger UI's files are served from (``swagger-ui-bundle-v2`` ships them).
DOCS_ASSETS = "/docs/assets"


def add_swagger_ui(app: FastAPI) -> None:
    """``/docs`` with Swagger UI's script and style sheet from the installed package, so the
    page works on a box without Internet access (FastAPI's default loads them from a CDN)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="keyledger — Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI description, with the request bodies the dialects read themselves."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=[
            {"name": "Mews", "description": "Mews Connector API: resource access tokens."},
            {"name": "Nexudus", "description": "Nexudus Spaces API: access tokens (vouchers)."},
            {
                "name": "keyledger",
                "description": "keyledger's own API: resources and access decisions "
                "(Authorization: Bearer <AccessToken>).",
            },
            {"name": "Operations", "description": "Health, readiness and metrics."},
        ],
    )
    components = document.setdefault("components", {})
    components["securitySchemes"] = {
        "basicAuth": {"type": "http", "scheme": "basic", "description": "e-mail:password"},
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "from POST /api/token"},
        "accessToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "an AccessToken from keyledger admin add-access-token",
        },
    }
    for path, methods in document["paths"].items():
        if path.startswith(nexudus.PREFIX):
            for operation in methods.values():
                operation["security"] = [{"basicAuth": []}, {"bearerAuth": []}]
        if path.startswith("/api/v1/"):
            for operation in methods.values():
                operation["security"] = [{"accessToken": []}]
    schemas = components.setdefault("schemas", {})
    for model in (*mews.REQUEST_SCHEMAS, *nexudus.REQUEST_SCHEMAS, *api.REQUEST_SCHEMAS):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
    app.openapi_schema = document
    return document
