"""Configuration: every setting is an environment variable with the prefix ``KEYLEDGER_``."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyledger.kit.sealing import parse_keys


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


class Settings(BaseSettings):
    """Every knob of a keyledger deployment (see README, section "Settings")."""

    model_config = SettingsConfigDict(env_prefix="KEYLEDGER_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///keyledger.db",
        description="SQLAlchemy URL of the store; default: SQLite file keyledger.db in the cwd.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for rate limits shared by all workers and instances.",
    )
    redis_key_prefix: str = Field(default="keyledger", description="Prefix of every Redis key.")
    mews_rate_limit: int = Field(
        default=200, ge=0, description="Mews requests per AccessToken per window; 0 disables."
    )
    mews_rate_window_seconds: int = Field(default=30, ge=1, description="Sliding window length.")
    nexudus_rate_limit: int = Field(
        default=300, ge=0, description="Nexudus requests per user per window (409); 0 disables."
    )
    nexudus_rate_window_seconds: int = Field(default=60, ge=1, description="Sliding window.")
    bearer_token_seconds: int = Field(
        default=3600, ge=60, description="Lifetime of a bearer token from POST /api/token."
    )
    refresh_token_seconds: int = Field(
        default=30 * 24 * 3600, ge=60, description="Lifetime of a refresh token."
    )
    password_cache_seconds: int = Field(
        default=60,
        ge=0,
        description="How long a verified Basic password is remembered in process (0: never).",
    )
    auth_cache_seconds: float = Field(
        default=2,
        ge=0,
        description="How long a worker remembers an authenticated ClientToken/AccessToken "
        "(revocation takes effect within this time; 0: never).",
    )
    auth_failures_per_caller: int = Field(
        default=10,
        ge=0,
        description="Failed password checks of one e-mail from one address within the window "
        "before that pair's attempts are refused, even with the right password (0: no limit).",
    )
    auth_failures_per_address: int = Field(
        default=100,
        ge=0,
        description="Failed authentications from one client address within the window after "
        "which its further failures are answered as throttled; valid credentials still pass "
        "(0: no limit).",
    )
    auth_failures_per_account: int = Field(
        default=100,
        ge=0,
        description="Failed password checks of one e-mail from all addresses within the window "
        "before its password checks are refused everywhere (0: no limit).",
    )
    auth_failure_window_seconds: int = Field(default=300, ge=1, description="Sliding window.")
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDR networks of reverse proxies whose "
        "X-Forwarded-For names the client (default: none, the peer address is the client).",
    )
    password_check_threads: int = Field(
        default=2,
        ge=1,
        description="Threads per worker that run Argon2 password checks off the event loop.",
    )
    password_check_queue: int = Field(
        default=32,
        ge=0,
        description="Password checks per worker that may wait for an Argon2 thread; past it a "
        "check is answered as throttled with Retry-After (docs/reliability.md).",
    )
    password_check_narrow_queue: int = Field(
        default=8,
        ge=0,
        description="Password checks per worker from clients over their address limit that may "
        "wait for the one Argon2 slot they share; past it they are answered as throttled.",
    )
    reader_failure_limit: int = Field(
        default=10, ge=1, description="Refused door checks at one reader that lock it."
    )
    reader_failure_window_seconds: int = Field(default=300, ge=1)
    reader_cooldown_seconds: int = Field(default=300, ge=1)
    guess_budget_per_caller: int = Field(
        default=300,
        ge=1,
        description="Refused codes (door checks and hotspot starts) of one access token across "
        "every reader and property within the guess window; past it the token's checks and "
        "starts answer Throttled until the window ends (docs/access.md).",
    )
    guess_budget_per_property: int = Field(
        default=1500,
        ge=1,
        description="Refused codes at one property across every access token within the guess "
        "window; past it every check and start there answers Throttled until the window ends.",
    )
    guess_window_seconds: int = Field(
        default=3600, ge=60, description="The fixed window of the guessing budgets."
    )
    hotspot_idle_seconds: int = Field(
        default=600, ge=1, description="A hotspot session with no report this long is over."
    )
    radius_auth_port: int = Field(
        default=1812,
        ge=0,
        le=65535,
        description="UDP port of RADIUS authentication (Access-Request) on the host of "
        "`keyledger serve`; every worker serves it (SO_REUSEPORT). 0 turns it off.",
    )
    radius_acct_port: int = Field(
        default=1813,
        ge=0,
        le=65535,
        description="UDP port of RADIUS accounting (Accounting-Request). 0 turns it off.",
    )
    radius_host: str | None = Field(
        default=None,
        description="Address the RADIUS listeners bind; default: the --host of `keyledger serve`.",
    )
    radius_receive_buffer_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=0,
        le=256 * 1024 * 1024,
        description="Receive buffer asked for each RADIUS socket (SO_RCVBUF): the requests that "
        "wait there while a worker commits a group. The kernel caps it at net.core.rmem_max; "
        "0 keeps the system's default, otherwise at least 65536.",
    )
    radius_interim_seconds: int = Field(
        default=60,
        ge=1,
        description="Acct-Interim-Interval of an Access-Accept: how often the NAS reports usage.",
    )
    radius_guess_budget_per_device: int = Field(
        default=300,
        ge=1,
        description="Refused codes of one device (Calling-Station-Id) at one NAS within the guess "
        "window; past it that device's Access-Requests are rejected Throttled until it ends.",
    )
    radius_guess_budget_per_nas: int = Field(
        default=1500,
        ge=1,
        description="Refused codes of all the devices at one NAS within the guess window; past it "
        "every Access-Request of that NAS is rejected Throttled until it ends. Apart from the "
        "property's budget (door checks, HTTP).",
    )
    radius_duplicate_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A retransmitted RADIUS request (same NAS, identifier, authenticator) within "
        "this time gets the first answer again and is decided once (RFC 5080); 0: off.",
    )
    radius_disconnect_attempts: int = Field(
        default=3,
        ge=1,
        description="Disconnect-Requests sent for one withdrawn session before its silence is "
        "recorded (a hotspot.disconnect event with outcome NoAnswer).",
    )
    radius_disconnect_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Wait for a NAS's answer to one Disconnect-Request."
    )
    radius_disconnect_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each worker looks for withdrawn sessions to disconnect.",
    )
    request_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Processing time limit of one request (Mews: 408)."
    )
    body_read_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Grace time from the end of the headers; past it the request body must keep "
        "arriving at KEYLEDGER_BODY_MIN_BYTES_PER_SECOND on average (a body of n bytes may take "
        "this time plus n divided by that rate); a slower body is answered 408 in the dialect's "
        "shape and the connection closed.",
    )
    body_min_bytes_per_second: int = Field(
        default=8192,
        ge=1,
        description="The average rate below which a request body arriving past "
        "KEYLEDGER_BODY_READ_SECONDS is cut off (8 KiB/s: a 64 kbit/s link).",
    )
    header_read_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time from a connection's start (or from the end of its previous response) by "
        "which the next request's headers must have arrived; else the connection is closed.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest accepted request line and headers together; beyond, 431 and the "
        "connection closed.",
    )
    keep_alive_seconds: int = Field(
        default=5, ge=1, description="An idle keep-alive connection is closed after this long."
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections per worker beyond which idle keep-alive connections are "
        "closed, oldest first, and a new connection with none to make room for is closed.",
    )
    redis_timeout_ms: int = Field(
        default=50,
        ge=1,
        description="Bound of every Redis call (connect, command); past it rate limits and the "
        "failed-authentication throttle count in the worker's memory.",
    )
    redis_pause_seconds: float = Field(
        default=1.0,
        ge=0,
        description="After a failed Redis call, rate limits skip Redis (counting in the worker's "
        "memory) for this long.",
    )
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Largest accepted request body (413)."
    )
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    sqlite_synchronous: str = Field(
        default="NORMAL", description="SQLite synchronous pragma (NORMAL or FULL)."
    )
    database_pool_size: int = Field(default=5, ge=1)
    database_connect_timeout_seconds: int = Field(default=5, ge=1)
    log_level: str = Field(default="INFO")
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Seals PINs and RFID numbers at rest (AES-256-GCM): one or more keys from "
        "`keyledger admin new-key`, comma-separated; the first seals, all open. Unset: in clear.",
    )

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("radius_receive_buffer_bytes")
    @classmethod
    def _receive_buffer(cls, value: int) -> int:
        if 0 < value < 65536:  # a few datagrams: every burst dropped
            raise ValueError("must be 0 (the system's default) or at least 65536")
        return value

    @field_validator("sqlite_synchronous")
    @classmethod
    def _synchronous(cls, value: str) -> str:
        value = value.upper()
        if value not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be OFF, NORMAL, FULL or EXTRA")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for entry in _entries(value):
            ipaddress.ip_network(entry, strict=False)  # a ValueError names the bad entry
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return _entries(self.trusted_proxies)

    @field_validator("encryption_key")
    @classmethod
    def _keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_keys(value.get_secret_value())
        return value

    @property
    def encryption_keys(self) -> list[bytes]:
        if self.encryption_key is None:
            return []
        return parse_keys(self.encryption_key.get_secret_value())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
