"""Tables of the store. Migrations (``store/migrations``) create exactly this schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.types import DateTime, TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: 64-bit integer key that is still SQLite's rowid alias (INTEGER PRIMARY KEY).
RowId = BigInteger().with_variant(Integer(), "sqlite")


def integer_bounds(column: Column[Any]) -> tuple[int, int]:
    """The smallest and largest integer ``column`` can hold on every database (PostgreSQL's
    ``integer`` is 32-bit, ``bigint`` 64-bit; SQLite holds 64 bits in either). Every integer
    input is bounded by the column it ends up in, through this one function."""
    if isinstance(column.type, BigInteger):
        return -(2**63), 2**63 - 1
    if isinstance(column.type, Integer):
        return -(2**31), 2**31 - 1
    raise TypeError(f"{column} is not an integer column")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; whole seconds on both databases."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC).replace(microsecond=0)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


properties = Table(
    "properties",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("enterprise_id", Uuid, nullable=False, unique=True),
    Column("business_id", BigInteger, nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("created_utc", UtcDateTime, nullable=False),
    # Refuse a reservation token whose Type+Value could open a door another one opens (issue 4).
    Column("collision_check", Boolean, nullable=False, server_default=text("true")),
)

integrations = Table(
    "integrations",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("client_token_digest", String(64), nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_utc", UtcDateTime, nullable=False),
    Column("disabled_utc", UtcDateTime, nullable=True),
)

# A Mews "AccessToken": one integration's connection to one property, or to several (portfolio).
connections = Table(
    "connections",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("integration_id", ForeignKey("integrations.id"), nullable=False, index=True),
    Column("access_token_digest", String(64), nullable=False, unique=True),
    Column("created_utc", UtcDateTime, nullable=False),
    Column("revoked_utc", UtcDateTime, nullable=True),
    # What the token may do: a JSON list of scope names (callers/permissions.py), fixed when it
    # is made (migration 0010 gave every older token all of them; a row that names none: none).
    Column("scopes", JSON, nullable=False, server_default=text("'[]'")),
)

connection_properties = Table(
    "connection_properties",
    metadata,
    Column("connection_id", ForeignKey("connections.id"), primary_key=True),
    Column("property_id", ForeignKey("properties.id"), primary_key=True),
)

users = Table(
    "users",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("api_access", Boolean, nullable=False, default=True),
    Column("created_utc", UtcDateTime, nullable=False),
    Column("disabled_utc", UtcDateTime, nullable=True),
    # Advanced by enable-user and set-password: failed-login counts keyed with an earlier epoch
    # no longer count (auth_throttle.py; migration 0012).
    Column("auth_failures_epoch", Integer, nullable=False, server_default="0"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", ForeignKey("users.id"), primary_key=True),
    Column("property_id", ForeignKey("properties.id"), primary_key=True),
    Column("roles", JSON, nullable=False),
)

# One credential store: reservation tokens (Mews) and Wi-Fi vouchers (Nexudus) in one table.
# ``kind`` says which dialect can represent a row completely. Every query is scoped to the
# caller's properties and one kind, so each kind has its own partial indexes led by property_id.
credentials = Table(
    "credentials",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("uid", Uuid, nullable=False, unique=True),
    Column("property_id", ForeignKey("properties.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    # A door credential's value is found by its keyed fingerprint and, with an encryption key,
    # kept only sealed (``value`` is then empty); a voucher's code is in ``value`` (sealing.py).
    Column("value", String(255), nullable=False),
    Column("value_sealed", LargeBinary, nullable=True),
    Column("value_fp", LargeBinary(32), nullable=True),
    Column("token_type", String(16), nullable=True),
    Column("service_order_id", Uuid, nullable=True),
    Column("companionship_id", Uuid, nullable=True),
    Column("resource_id", Uuid, nullable=True),
    Column("serial_number", String(255), nullable=True),
    Column("valid_from", UtcDateTime, nullable=True),
    Column("valid_to", UtcDateTime, nullable=True),
    Column("perm_bed", Boolean, nullable=False, default=False),
    Column("perm_room", Boolean, nullable=False, default=False),
    Column("perm_floor", Boolean, nullable=False, default=False),
    Column("perm_building", Boolean, nullable=False, default=False),
    Column("description", Text, nullable=True),
    Column("minutes_included", Integer, nullable=True),
    Column("minutes_left", Integer, nullable=True),
    # Seconds used but not yet a whole minute (hotspot usage is reported in seconds).
    Column("usage_seconds", Integer, nullable=False, server_default=text("0")),
    Column("user_limit", Integer, nullable=True),
    Column("last_access", UtcDateTime, nullable=True),
    Column("system_id", Text, nullable=True),
    Column("created_utc", UtcDateTime, nullable=False),
    Column("updated_utc", UtcDateTime, nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("updated_by", String(320), nullable=False),
    Column("deleted_utc", UtcDateTime, nullable=True),
    # Vouchers: the code and description as compared and searched (keyledger.kit.inputs.fold).
    Column("code_key", Text, nullable=True),
    Column("description_key", Text, nullable=True),
    # Reservation tokens (Mews): keyset pagination newest first, UpdatedUtc and CollidingUtc.
    Index(
        "ix_reservations_created",
        "property_id",
        "created_utc",
        "uid",
        sqlite_where=text("kind = 'reservation'"),
        postgresql_where=text("kind = 'reservation'"),
    ),
    Index(
        "ix_reservations_updated",
        "property_id",
        "updated_utc",
        sqlite_where=text("kind = 'reservation'"),
        postgresql_where=text("kind = 'reservation'"),
    ),
    Index(
        "ix_reservations_value_fp",
        "property_id",
        "value_fp",
        sqlite_where=text("kind = 'reservation'"),
        postgresql_where=text("kind = 'reservation'"),
    ),
    Index(
        "ix_reservations_valid_to",
        "property_id",
        "valid_to",
        sqlite_where=text("kind = 'reservation'"),
        postgresql_where=text("kind = 'reservation'"),
    ),
    Index("ix_credentials_service_order", "service_order_id"),
    # A voucher's code is unique among the live vouchers of its business, as a person reads it
    # (code_key: NFKC, case folded; migration 0009).
    Index(
        "uq_credentials_live_voucher_key",
        "property_id",
        "code_key",
        unique=True,
        sqlite_where=text("kind = 'voucher' AND deleted_utc IS NULL"),
        postgresql_where=text("kind = 'voucher' AND deleted_utc IS NULL"),
    ),
)

#: Structures made by raw SQL in migrations (not expressible here): the substring search of
#: 0002, over the normalised copies since 0009 (PostgreSQL trigram GIN indexes, SQLite's FTS5
#: trigram table), and the per-field partial indexes of live vouchers of 0003 (NULLS FIRST on
#: PostgreSQL).
SEARCH_OBJECTS = frozenset(
    {
        *(
            f"ix_vouchers_live_{name}"
            for name in (
                "id",
                "description",
                "last_access",
                "minutes_included",
                "minutes_left",
                "user_limit",
                "valid_from",
                "valid_to",
                "created",
                "updated",
            )
        ),
        "credential_search",
        "credential_search_data",
        "credential_search_idx",
        "credential_search_content",
        "credential_search_docsize",
        "credential_search_config",
        "ix_credentials_code_key_trgm",
        "ix_credentials_description_key_trgm",
    }
)

# The resource tree of a property: what a Floor or Building permission covers.
resources = Table(
    "resources",
    metadata,
    Column("property_id", ForeignKey("properties.id"), primary_key=True),
    Column("uid", Uuid, primary_key=True),
    Column("parent_uid", Uuid, nullable=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_utc", UtcDateTime, nullable=False),
    Column("updated_utc", UtcDateTime, nullable=False),
    Index("ix_resources_parent", "property_id", "parent_uid"),
)

# Devices online with a voucher (issue 4). A session with no report for the idle timeout is over.
hotspot_sessions = Table(
    "hotspot_sessions",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("uid", Uuid, nullable=False, unique=True),
    Column("credential_id", ForeignKey("credentials.id"), nullable=False),
    Column("device_id", String(200), nullable=False),
    Column("started_utc", UtcDateTime, nullable=False),
    Column("last_report_utc", UtcDateTime, nullable=False),
    Column("ended_utc", UtcDateTime, nullable=True),
    # Why the session ended when the system ended it (issue 12): Deleted, Expired, NoMinutesLeft
    # (its voucher withdrawn or used up), Ended (the client), Idle; null while open.
    Column("end_reason", String(16), nullable=True),
    # A voucher's open sessions: ``last_report_utc`` kept out, so the rewrite of every start and
    # report leaves the index alone (0015).
    Index(
        "ix_hotspot_sessions_open",
        "credential_id",
        sqlite_where=text("ended_utc IS NULL"),
        postgresql_where=text("ended_utc IS NULL"),
    ),
)

# RADIUS (issue 14): the network access servers (hotspots) that may ask, one business each, with
# the shared secret sealed like door values (it must be read back to sign packets).
nas_clients = Table(
    "nas_clients",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("uid", Uuid, nullable=False, unique=True),  # binds the sealed secret to its row
    Column("property_id", ForeignKey("properties.id"), nullable=False),
    Column("name", String(200), nullable=True),
    Column("address", String(64), nullable=False),  # a network in CIDR form
    Column("secret", String(200), nullable=False),  # "" when sealed
    Column("secret_sealed", LargeBinary, nullable=True),
    Column("coa_port", Integer, nullable=False),
    Column("require_message_authenticator", Boolean, nullable=False),
    Column("created_utc", UtcDateTime, nullable=False),
)

# A NAS's accounting sessions (Acct-Session-Id), each on one hotspot session: the highest
# Acct-Session-Time counted (growth is what is consumed), and the Disconnect-Request state.
radius_sessions = Table(
    "radius_sessions",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("nas_id", ForeignKey("nas_clients.id"), nullable=False),
    Column("acct_session_id", String(253), nullable=False),
    Column("session_uid", Uuid, nullable=False),
    Column("user_name", String(253), nullable=False),
    Column("calling_station_id", String(253), nullable=False),
    Column("nas_address", String(64), nullable=False),  # where the accounting came from
    Column("session_time", BigInteger, nullable=False),
    Column("stopped", Boolean, nullable=False),
    # Disconnect-Request: attempts made, not before when the next may go, and the outcome
    # (Ack, Nak, NoAnswer) once settled.
    Column("disconnect_attempts", Integer, nullable=False),
    Column("disconnect_after_utc", UtcDateTime, nullable=True),
    Column("disconnect_outcome", String(16), nullable=True),
    Column("updated_utc", UtcDateTime, nullable=False),
    # One row per connection and hotspot session: a NAS record may be a network of several
    # devices, each with its own Acct-Session-Ids (0014), and a device may reuse an id for a
    # new session while reports of the earlier one still come: each keeps its own count (0016).
    UniqueConstraint(
        "nas_id",
        "nas_address",
        "acct_session_id",
        "session_uid",
        name="uq_radius_sessions_connection",
    ),
    Index("ix_radius_sessions_open", "stopped", "disconnect_outcome"),
    Index("ix_radius_sessions_session_uid", "session_uid"),
)

# Guessing budgets (issue 12): refused codes per subject (an access token, a property) in a fixed
# window. One row per subject and window, counted under the subject's advisory lock.
guess_counts = Table(
    "guess_counts",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("window_start", UtcDateTime, primary_key=True),
    Column("misses", Integer, nullable=False),
)

# Immutable audit log: every change and every access decision. Never a credential's value.
events = Table(
    "events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("occurred_utc", UtcDateTime, nullable=False),
    Column("property_id", ForeignKey("properties.id"), nullable=True),
    Column("kind", String(48), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", BigInteger, nullable=True),
    Column("actor_label", String(320), nullable=False),
    Column("actor_token_id", BigInteger, nullable=True),  # the access token used (0010)
    Column("credential_uid", Uuid, nullable=True),
    Column("resource_uid", Uuid, nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("details", JSON, nullable=True),
    Index("ix_events_property", "property_id", "id"),
    Index("ix_events_credential", "credential_uid", "id"),
    # Only events of a resource are in these (queries ask for one ``resource_uid``): hotspot,
    # RADIUS and credential events, most of the log, write no entry in them (0015).
    Index(
        "ix_events_resource",
        "resource_uid",
        "id",
        sqlite_where=text("resource_uid IS NOT NULL"),
        postgresql_where=text("resource_uid IS NOT NULL"),
    ),
    Index("ix_events_kind", "property_id", "kind", "id"),
    Index(
        "ix_events_reader",
        "resource_uid",
        "kind",
        "occurred_utc",
        sqlite_where=text("resource_uid IS NOT NULL"),
        postgresql_where=text("resource_uid IS NOT NULL"),
    ),
)

# Bearer tokens of the Nexudus dialect (POST /api/token), stored as digests.
bearer_tokens = Table(
    "bearer_tokens",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("access_digest", String(64), nullable=False, unique=True),
    Column("refresh_digest", String(64), nullable=False, unique=True),
    Column("access_expires_utc", UtcDateTime, nullable=False),
    Column("refresh_expires_utc", UtcDateTime, nullable=False),
    Column("created_utc", UtcDateTime, nullable=False),
    Column("revoked_utc", UtcDateTime, nullable=True),
    # The password grant this pair descends from (refreshes pass it on): replaying a rotated
    # refresh token revokes every pair of its family.
    Column("family_uid", Uuid, nullable=False, index=True),
)

# Marks of one-off provisioning (e.g. demo data), so a restart never repeats it.
store_marks = Table(
    "store_marks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created_utc", UtcDateTime, nullable=False),
)


#: Bounds of the integers clients write (``integer_bounds``).
MINUTES_MAX = integer_bounds(credentials.c.minutes_included)[1]
USER_LIMIT_MAX = integer_bounds(credentials.c.user_limit)[1]
BUSINESS_ID_MAX = integer_bounds(properties.c.business_id)[1]
