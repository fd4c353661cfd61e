"""What an access token may do: its scopes, and the one scope each operation needs.

``Scope`` (domain/properties/models.py) already names the *properties* a caller covers; what an
access token may *do* there is a ``Permission``, shown on the wire and on the command line as a
scope name (``--scope access:check``). A token holds a fixed set, chosen when it is made
(``keyledger admin add-access-token --scope …``; none given: every one). Every operation an access
token can call needs exactly one, listed in ``OPERATION_PERMISSIONS`` by the operation id of its
route and documented in docs/access.md ("Scopes"); ``create_app`` refuses to start when a route of
the Mews dialect or of ``/api/v1`` has no entry, so a new operation cannot be open by omission.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from keyledger.kit.errors import Forbidden, InvalidInput


class Permission(StrEnum):
    CREDENTIALS_READ = "credentials:read"
    CREDENTIALS_WRITE = "credentials:write"
    RESOURCES_READ = "resources:read"
    RESOURCES_WRITE = "resources:write"
    ACCESS_CHECK = "access:check"
    HOTSPOT = "hotspot"
    EVENTS_READ = "events:read"


#: A token made without ``--scope`` (and every token made before scopes existed).
EVERY_PERMISSION: frozenset[Permission] = frozenset(Permission)

#: The one permission each operation of an access token needs, by operation id.
OPERATION_PERMISSIONS: dict[str, Permission] = {
    "mews_resourceAccessTokens_getAll": Permission.CREDENTIALS_READ,
    "mews_resourceAccessTokens_add": Permission.CREDENTIALS_WRITE,
    "mews_resourceAccessTokens_update": Permission.CREDENTIALS_WRITE,
    "mews_resourceAccessTokens_delete": Permission.CREDENTIALS_WRITE,
    "v1_resources_list": Permission.RESOURCES_READ,
    "v1_resources_get": Permission.RESOURCES_READ,
    "v1_resources_put": Permission.RESOURCES_WRITE,
    "v1_resources_delete": Permission.RESOURCES_WRITE,
    "v1_access_check": Permission.ACCESS_CHECK,
    "v1_hotspot_session_start": Permission.HOTSPOT,
    "v1_hotspot_session_usage": Permission.HOTSPOT,
    "v1_hotspot_session_end": Permission.HOTSPOT,
    "v1_events_list": Permission.EVENTS_READ,
}


class MissingPermission(Forbidden):
    """The access token is valid but was not given the scope the operation needs."""

    def __init__(self, needed: Permission) -> None:
        super().__init__(
            f"This operation needs the scope {needed.value}, which this access token does not "
            "have.",
            subject="scope",
            value=needed.value,
        )
        self.needed = needed


def parse_permissions(names: Iterable[str]) -> frozenset[Permission]:
    """The permissions named (``credentials:read``…); none named is every permission."""
    chosen: list[Permission] = []
    for name in names:
        try:
            chosen.append(Permission(name.strip()))
        except ValueError:
            known = ", ".join(p.value for p in Permission)
            raise InvalidInput(
                f"Unknown scope {name!r}; scopes are {known}.", subject="scope"
            ) from None
    return frozenset(chosen) if chosen else EVERY_PERMISSION


def ordered(permissions: Iterable[Permission]) -> list[str]:
    """Permission names in their declared order (as stored and shown)."""
    held = set(permissions)
    return [p.value for p in Permission if p in held]


def required_for(operation_id: str) -> Permission:
    """The permission an operation needs; an operation without an entry is refused to all."""
    found = OPERATION_PERMISSIONS.get(operation_id)
    if found is None:
        raise Forbidden(f"Operation {operation_id} is not open to access tokens.", subject="scope")
    return found


def check_covered(operation_ids: Iterable[str | None]) -> None:
    """Refuse to build an app with an access-token operation that needs no listed scope."""
    missing = [str(op) for op in operation_ids if op not in OPERATION_PERMISSIONS]
    if missing:
        raise RuntimeError(f"Operations without a scope: {', '.join(missing)}.")
