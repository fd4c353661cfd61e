"""The ``keyledger`` command line: serve, migrate, openapi and admin commands.

Admin commands print one JSON object on stdout. Bad input prints one line on stderr and exits
with status 2, having written nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, NoReturn, cast
from uuid import UUID

import click
import orjson

from keyledger.kit.errors import DomainError
from keyledger.kit.settings import Settings


class CommandError(click.ClickException):
    exit_code = 2


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        # Name the variable and the rule, never the value (it may be a key).
        first = error.errors(include_input=False)[0]
        name = "KEYLEDGER_" + "_".join(str(part) for part in first["loc"]).upper()
        raise CommandError(f"invalid configuration: {name}: {first['msg']}") from None


def _store(settings: Settings | None = None) -> Any:
    from keyledger.store import Store
    from keyledger.store.migrate import upgrade

    store = Store(settings or _settings())
    upgrade(store.engine)
    return store


def _emit(payload: dict[str, Any]) -> None:
    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keyledger")
def cli() -> None:
    """keyledger: door PINs, RFID tags and Wi-Fi vouchers behind the Mews and Nexudus APIs.

    The store is chosen by KEYLEDGER_DATABASE_URL (default: sqlite:///keyledger.db).
    """


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--demo", is_flag=True, help="Provision the demo records (once per store).")
def serve(host: str, port: int, workers: int, demo: bool) -> None:
    """Apply pending migrations, then serve every dialect."""
    import uvicorn

    from keyledger.cli.demo import provision_demo
    from keyledger.observability.logging import configure_logging

    settings = _settings()
    limited = settings.mews_rate_limit > 0 or settings.nexudus_rate_limit > 0
    if workers > 1 and not settings.redis_url and limited:
        raise CommandError(
            "--workers > 1 needs KEYLEDGER_REDIS_URL so that rate limits are shared by all "
            "workers (or disable them: KEYLEDGER_MEWS_RATE_LIMIT=0, KEYLEDGER_NEXUDUS_RATE_LIMIT=0)"
        )
    braked = (
        settings.auth_failures_per_caller,
        settings.auth_failures_per_account,
        settings.auth_failures_per_address,
    )
    if workers > 1 and not settings.redis_url and any(braked):
        # Each worker would count failed logins alone: N workers, N times the limit.
        raise CommandError(
            "--workers > 1 needs KEYLEDGER_REDIS_URL so that the failed-login limits hold across "
            "workers (KEYLEDGER_AUTH_FAILURES_PER_CALLER, _PER_ACCOUNT, _PER_ADDRESS)"
        )
    configure_logging(settings.log_level)
    # The RADIUS listeners of every worker bind the HTTP host unless told otherwise.
    os.environ.setdefault("KEYLEDGER_RADIUS_HOST", host)
    store = _store(settings)
    if demo:
        provision_demo(store)
    store.dispose()
    if workers > 1:
        _prepare_multiprocess_metrics()
    uvicorn.run(
        "keyledger.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # Header and body receipt deadlines and a connection cap (keyledger/web/serving.py).
        http="keyledger.web.serving:GuardedHttpToolsProtocol",
        timeout_keep_alive=settings.keep_alive_seconds,
        # uvicorn's default trusts X-Forwarded-For from 127.0.0.1; the app trusts only
        # KEYLEDGER_TRUSTED_PROXIES (create_app).
        proxy_headers=False,
    )


def _prepare_multiprocess_metrics() -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="keyledger-metrics-")


@cli.command()
def migrate() -> None:
    """Apply pending schema migrations."""
    from keyledger.store.migrate import current_revision

    store = _store()
    _emit({"Revision": current_revision(store.engine)})


@cli.command()
def openapi() -> None:
    """Print the OpenAPI description of every dialect."""
    from keyledger.web.app import create_app

    settings = _settings()
    app = create_app(settings)
    click.echo(orjson.dumps(app.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


@cli.group()
def admin() -> None:
    """Provision properties, integrations, access tokens and users."""


@admin.command("add-property")
@click.option("--name", required=True)
@click.option("--enterprise-id", type=click.UUID, default=None)
@click.option("--business-id", type=click.IntRange(1), default=None)
@click.option("--timezone", default="UTC", show_default=True)
def add_property(
    name: str, enterprise_id: UUID | None, business_id: int | None, timezone: str
) -> None:
    """Add a property (an enterprise in Mews, a business in Nexudus)."""
    from keyledger.domain.properties.service import add_property as add

    created = add(
        _store(), name=name, enterprise_id=enterprise_id, business_id=business_id, timezone=timezone
    )
    _emit(
        {
            "EnterpriseId": str(created.enterprise_id),
            "BusinessId": created.business_id,
            "Name": created.name,
            "TimeZone": created.timezone,
        }
    )


@admin.command("set-collision-check")
@click.option("--enterprise", "enterprise_id", type=click.UUID, required=True)
@click.option("--on/--off", "enabled", required=True)
def set_collision_check(enterprise_id: UUID, enabled: bool) -> None:
    """Refuse (on, the default) or allow reservation tokens that could open the same door."""
    from keyledger.domain.properties.service import set_collision_check as switch

    changed = switch(_store(), enterprise_id=enterprise_id, enabled=enabled)
    _emit({"EnterpriseId": str(changed.enterprise_id), "CollisionCheck": changed.collision_check})


@admin.command("list-properties")
def list_properties() -> None:
    """List every property."""
    from keyledger.domain.properties.service import list_properties as listing

    _emit(
        {
            "Properties": [
                {
                    "EnterpriseId": str(p.enterprise_id),
                    "BusinessId": p.business_id,
                    "Name": p.name,
                    "TimeZone": p.timezone,
                    "CollisionCheck": p.collision_check,
                }
                for p in listing(_store())
            ]
        }
    )


@admin.command("add-integration")
@click.option("--name", required=True)
def add_integration(name: str) -> None:
    """Register an integration; prints its ClientToken once."""
    from keyledger.domain.callers.integrations import add_integration as add

    issued = add(_store(), name=name)
    _emit({"IntegrationId": issued.id, "Name": issued.name, "ClientToken": issued.secret})


def _integration_switch(
    enabled: bool, client_token: str | None, integration_id: int | None
) -> None:
    from keyledger.domain.callers.integrations import set_integration_enabled

    if (client_token is None) == (integration_id is None):
        raise CommandError("give exactly one of --client-token and --id")
    found = set_integration_enabled(
        _store(), enabled=enabled, client_token=client_token, integration_id=integration_id
    )
    _emit({"IntegrationId": found, "Enabled": enabled})


@admin.command("disable-integration")
@click.option("--client-token", default=None)
@click.option("--id", "integration_id", type=int, default=None)
def disable_integration(client_token: str | None, integration_id: int | None) -> None:
    """Disable an integration: its ClientToken stops working at once."""
    _integration_switch(False, client_token, integration_id)


@admin.command("enable-integration")
@click.option("--client-token", default=None)
@click.option("--id", "integration_id", type=int, default=None)
def enable_integration(client_token: str | None, integration_id: int | None) -> None:
    """Enable a disabled integration again."""
    _integration_switch(True, client_token, integration_id)


@admin.command("add-access-token")
@click.option("--client-token", required=True)
@click.option("--enterprise", "enterprises", type=click.UUID, multiple=True, required=True)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="What the token may do (repeatable): credentials:read, credentials:write, "
    "resources:read, resources:write, access:check, hotspot, events:read. None: all of them.",
)
def add_access_token(
    client_token: str, enterprises: tuple[UUID, ...], scopes: tuple[str, ...]
) -> None:
    """Connect an integration to enterprises; several make a portfolio token. Printed once."""
    from keyledger.domain.callers.integrations import add_access_token as add

    issued = add(
        _store(), client_token=client_token, enterprise_ids=list(enterprises), scopes=scopes
    )
    _emit(
        {
            "AccessTokenId": issued.id,
            "AccessToken": issued.secret,
            "EnterpriseIds": [str(e) for e in issued.enterprise_ids],
            "Scopes": list(issued.scopes),
        }
    )


@admin.command("list-access-tokens")
def list_access_tokens() -> None:
    """List every access token: id, integration, enterprises, scopes (never the token)."""
    from keyledger.domain.callers.integrations import list_access_tokens as listing
    from keyledger.kit.clock import format_utc

    _emit(
        {
            "AccessTokens": [
                {
                    "AccessTokenId": row["id"],
                    "IntegrationId": row["integration_id"],
                    "IntegrationName": row["integration_name"],
                    "EnterpriseIds": [str(e) for e in row["enterprise_ids"]],
                    "Scopes": row["scopes"],
                    "CreatedUtc": format_utc(row["created_utc"]),
                    "RevokedUtc": None
                    if row["revoked_utc"] is None
                    else format_utc(row["revoked_utc"]),
                }
                for row in listing(_store())
            ]
        }
    )


@admin.command("revoke-access-token")
@click.option("--access-token", default=None)
@click.option("--id", "connection_id", type=int, default=None)
def revoke_access_token(access_token: str | None, connection_id: int | None) -> None:
    """Revoke an access token: it stops working at once."""
    from keyledger.domain.callers.integrations import revoke_access_token as revoke

    if (access_token is None) == (connection_id is None):
        raise CommandError("give exactly one of --access-token and --id")
    revoked = revoke(_store(), access_token=access_token, connection_id=connection_id)
    _emit({"AccessTokenId": revoked, "Revoked": True})


@admin.command("add-user")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--business", "businesses", type=click.IntRange(1), multiple=True, required=True)
@click.option("--role", "roles", multiple=True, required=True)
def add_user(
    email: str, password: str, businesses: tuple[int, ...], roles: tuple[str, ...]
) -> None:
    """Add a Nexudus API user with roles in the given businesses."""
    from keyledger.domain.callers.users import add_user as add

    _emit(add(_store(), email=email, password=password, business_ids=businesses, roles=roles))


def _user_switch(email: str, enabled: bool) -> None:
    from keyledger.domain.callers.users import set_user_enabled

    _emit_user_change(set_user_enabled(_store(), email=email, enabled=enabled), Enabled=enabled)


def _emit_user_change(changed: Any, **what: object) -> None:
    _emit(
        {
            "UserId": changed.user_id,
            "Email": changed.email,
            **what,
            "BearerTokensRevoked": changed.bearer_tokens_revoked,
        }
    )


@admin.command("disable-user")
@click.option("--email", required=True)
def disable_user(email: str) -> None:
    """Disable a Nexudus API user at once; its bearer tokens are revoked."""
    _user_switch(email, False)


@admin.command("enable-user")
@click.option("--email", required=True)
def enable_user(email: str) -> None:
    """Enable a disabled user again."""
    _user_switch(email, True)


@admin.command("set-password")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def set_password(email: str, password: str) -> None:
    """Replace a user's password (asked for when not given); its bearer tokens are revoked."""
    from keyledger.domain.callers.users import set_user_password

    changed = set_user_password(_store(), email=email, password=password)
    _emit_user_change(changed, PasswordChanged=True)


@admin.command("new-key")
def new_key() -> None:
    """Print a fresh key for KEYLEDGER_ENCRYPTION_KEY (32 random bytes, URL-safe base64)."""
    from keyledger.kit.sealing import new_key as make

    _emit({"EncryptionKey": make()})


@admin.command("rotate-key")
@click.option("--decrypt", is_flag=True, help="Store every value in clear instead.")
@click.option(
    "--vacuum", is_flag=True, help="Then rebuild the storage so no old value stays in free space."
)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000))
def rotate_key(decrypt: bool, vacuum: bool, batch_size: int) -> None:
    """Seal every PIN and RFID value with the first key of KEYLEDGER_ENCRYPTION_KEY.

    Servers may keep running (configure them with the same key list first). Afterwards the other
    keys can be removed from KEYLEDGER_ENCRYPTION_KEY.
    """
    from keyledger.domain.credentials.rekeying import compact, rekey_values, sealed_key_ids

    store = _store()
    if not decrypt and not store.sealer.sealing:
        raise CommandError(
            "KEYLEDGER_ENCRYPTION_KEY is not set: set it (`keyledger admin new-key`), or give "
            "--decrypt to store values in clear"
        )
    done = rekey_values(store, decrypt=decrypt, batch_size=batch_size)
    if vacuum:
        compact(store)
    _emit(
        {
            "KeyId": done.key_id,
            "Examined": done.examined,
            "Rewritten": done.rewritten,
            "ChangedMeanwhile": done.changed_meanwhile,
            "SealedWith": sealed_key_ids(store),
            "Vacuumed": vacuum,
        }
    )


def _nas_json(nas: Any) -> dict[str, Any]:
    return {
        "NasId": nas.id,
        "BusinessId": nas.business_id,
        "Address": str(nas.network),
        "Name": nas.name,
        "CoaPort": nas.coa_port,
        "RequireMessageAuthenticator": nas.require_message_authenticator,
    }


def _secret_from(path: str) -> str:
    """The secret in a file (``-``: standard input), without its final line break. Errors name
    the file, never its content."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as error:
        raise CommandError(f"cannot read --secret-file {path}: {error.strerror}") from None
    try:
        secret = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"--secret-file {path} is not UTF-8 text") from None
    return secret.removesuffix("\n").removesuffix("\r")


@admin.command("add-nas")
@click.option("--business", "business_id", type=click.IntRange(1), required=True)
@click.option("--address", required=True, help="The NAS's IP address, or a CIDR network.")
@click.option(
    "--secret-file",
    default=None,
    help="A file holding the RADIUS shared secret (- for standard input); recommended.",
)
@click.option(
    "--secret",
    default=None,
    help="The RADIUS shared secret (stored sealed); visible to other users in ps: prefer "
    "--secret-file.",
)
@click.option("--name", default=None)
@click.option("--coa-port", default=3799, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--allow-missing-message-authenticator",
    is_flag=True,
    help="Accept Access-Requests without Message-Authenticator from this NAS (not advised).",
)
@click.option(
    "--allow-wide-network",
    is_flag=True,
    help="Accept a network broader than a /8 (IPv4) or a /32 (IPv6).",
)
def add_nas(
    *,
    business_id: int,
    address: str,
    secret_file: str | None,
    secret: str | None,
    name: str | None,
    coa_port: int,
    allow_missing_message_authenticator: bool,
    allow_wide_network: bool,
) -> None:
    """Let a hotspot (RADIUS NAS) log devices in with a business's vouchers."""
    from keyledger.domain.nas.models import NetworkOverlap
    from keyledger.domain.nas.service import add_nas as add
    from keyledger.domain.nas.service import secret_warnings

    if (secret is None) == (secret_file is None):
        raise CommandError("give exactly one of --secret-file and --secret")
    shared = secret if secret is not None else _secret_from(cast(str, secret_file))
    try:
        created = add(
            _store(),
            business_id=business_id,
            address=address,
            secret=shared,
            name=name,
            coa_port=coa_port,
            allow_missing_message_authenticator=allow_missing_message_authenticator,
            allow_wide_network=allow_wide_network,
        )
    except NetworkOverlap as overlap:
        # Refused like any bad input (stderr, status 2), and said as JSON on stdout for scripts.
        _emit(
            {
                "Error": "NetworkOverlap",
                "Message": overlap.message,
                "Address": str(overlap.network),
                "OverlapsNas": {
                    "NasId": overlap.other_id,
                    "BusinessId": overlap.other_business_id,
                    "Address": overlap.other_network,
                },
            }
        )
        raise
    _emit({**_nas_json(created), "Warnings": secret_warnings(shared)})


@admin.command("list-nas")
def list_nas() -> None:
    """List every RADIUS NAS (never its secret)."""
    from keyledger.domain.nas.service import list_nas as listing

    _emit({"Nas": [_nas_json(nas) for nas in listing(_store())]})


@admin.command("remove-nas")
@click.option("--id", "nas_id", type=click.IntRange(1), required=True)
def remove_nas(nas_id: int) -> None:
    """Remove a RADIUS NAS: its packets are dropped from then on (within a few seconds)."""
    from keyledger.domain.nas.service import remove_nas as remove

    remove(_store(), nas_id=nas_id)
    _emit({"NasId": nas_id, "Removed": True})


@admin.command("import-resources")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def import_resources(file: Any) -> None:
    """Create or replace resources from CSV (EnterpriseId,Id,ParentId,Kind,Name), atomically."""
    from keyledger.domain.credentials.collisions import reach_check
    from keyledger.domain.events.models import Actor
    from keyledger.domain.properties.service import list_properties as listing
    from keyledger.domain.resources import csvio
    from keyledger.domain.resources.service import save_resources

    store = _store()
    batches = csvio.parse(file.read(), {p.enterprise_id: p for p in listing(store)})
    saved = save_resources(
        store, actor=Actor.system(), batches=batches, on_reach_change=reach_check(store.sealer)
    )
    _emit({"Imported": len(saved)})


@admin.command("export-resources")
@click.option("--enterprise", "enterprises", type=click.UUID, multiple=True)
def export_resources(enterprises: tuple[UUID, ...]) -> None:
    """Print resources as CSV (all enterprises, or the ones named)."""
    from keyledger.domain.properties.models import Scope
    from keyledger.domain.properties.service import list_properties as listing
    from keyledger.domain.resources import csvio
    from keyledger.domain.resources.service import list_resources

    store = _store()
    scope = Scope(tuple(listing(store)))
    if enterprises:
        scope = scope.narrow_to_enterprises(enterprises)
    click.echo(csvio.render(list_resources(store, scope=scope), scope.by_id), nl=False)


@admin.command("events")
@click.option("--enterprise", "enterprises", type=click.UUID, multiple=True)
@click.option("--credential", type=click.UUID, default=None)
@click.option("--resource", type=click.UUID, default=None)
@click.option("--kind", "kinds", multiple=True, help="e.g. access.checked (repeatable)")
@click.option("--since", default=None, help="ISO 8601 with a zone; inclusive")
@click.option("--until", default=None, help="ISO 8601 with a zone; exclusive")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--before", type=click.IntRange(1), default=None, help="the Cursor of a page")
def list_events(
    *,
    enterprises: tuple[UUID, ...],
    credential: UUID | None,
    resource: UUID | None,
    kinds: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int,
    before: int | None,
) -> None:
    """Print the event log, newest first (never a credential's value)."""
    from keyledger.domain.events.models import EventKind, EventQuery
    from keyledger.domain.events.service import list_events as listing
    from keyledger.domain.properties.models import Scope
    from keyledger.domain.properties.service import list_properties
    from keyledger.kit.clock import parse_timestamp
    from keyledger.web.api.render import render_events

    try:
        wanted = tuple(EventKind(kind) for kind in kinds)
        start = parse_timestamp(since) if since else None
        end = parse_timestamp(until) if until else None
    except ValueError as error:
        raise CommandError(str(error)) from None
    store = _store()
    everything = Scope(tuple(list_properties(store)))
    scope = everything.narrow_to_enterprises(enterprises) if enterprises else None
    query = EventQuery(
        credential_uid=credential,
        resource_uid=resource,
        kinds=wanted,
        start=start,
        end=end,
        limit=limit,
        before=before,
    )
    property_ids = None if scope is None else scope.property_ids
    _emit(render_events(listing(store, property_ids=property_ids, query=query), everything.by_id))


def _fail(message: str) -> NoReturn:
    click.echo(f"keyledger: error: {message}", err=True)
    sys.exit(2)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as error:
        _fail(error.format_message().splitlines()[0])
    except DomainError as error:
        _fail(error.message)


if __name__ == "__main__":
    main()
