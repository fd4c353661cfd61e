from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from keyledger.domain.callers.permissions import EVERY_PERMISSION, MissingPermission, Permission
from keyledger.domain.events.models import Actor, ActorKind
from keyledger.domain.properties.models import Property, Scope
from keyledger.kit.errors import Forbidden

#: The longest secret (password, ClientToken, AccessToken, bearer or refresh token) looked up or
#: verified; a longer one is refused as invalid credentials without hashing it. 1024, the larger
#: of the two limits there were (passwords and bearer tokens had 1024, Mews and API tokens 512):
#: no secret accepted before is refused, and keyledger's own tokens are far shorter.
MAX_SECRET_LENGTH = 1024


class Role(StrEnum):
    """A Nexudus user's role in a business: what it may do with the business's access tokens
    (docs/nexudus.md, "Roles"). Granted per business (``keyledger admin add-user --role``)."""

    LIST = "AccessToken-List"
    READ = "AccessToken-Read"
    CREATE = "AccessToken-Create"
    EDIT = "AccessToken-Edit"
    DELETE = "AccessToken-Delete"


@dataclass(frozen=True, slots=True)
class IntegrationCaller:
    """An authenticated Mews request: the integration, its connection and the connection's scope."""

    integration_id: int
    integration_name: str
    connection_id: int
    scope: Scope
    permissions: frozenset[Permission] = EVERY_PERMISSION

    @property
    def actor(self) -> Actor:
        return Actor(
            kind=ActorKind.INTEGRATION,
            id=self.integration_id,
            label=self.integration_name,
            token_id=self.connection_id,
        )

    def holds(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        """Refuse (``MissingPermission``, a ``Forbidden``) unless the token has ``permission``."""
        if permission not in self.permissions:
            raise MissingPermission(permission)


@dataclass(frozen=True, slots=True)
class Membership:
    property: Property
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class UserCaller:
    """An authenticated Nexudus request: a user with roles per business."""

    user_id: int
    email: str
    memberships: tuple[Membership, ...]

    @property
    def actor(self) -> Actor:
        return Actor(kind=ActorKind.USER, id=self.user_id, label=self.email)

    @property
    def visible(self) -> Scope:
        """Every business the user belongs to: records elsewhere do not exist for them."""
        return Scope(tuple(m.property for m in self.memberships))

    def scope_with(self, role: Role) -> Scope:
        return Scope(tuple(m.property for m in self.memberships if role in m.roles))

    def scope_requiring(self, role: Role) -> Scope:
        """The businesses where the user has ``role``; none at all is Forbidden."""
        scope = self.scope_with(role)
        if not scope.properties:
            raise Forbidden(f"This operation requires the role {role.value}.")
        return scope

    def require(self, role: Role, property_id: int) -> None:
        for membership in self.memberships:
            if membership.property.id == property_id and role in membership.roles:
                return
        raise Forbidden(f"This operation requires the role {role.value} in the record's business.")


@dataclass(frozen=True, slots=True)
class IssuedBearer:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    """A record created together with a secret that is shown once and stored only as a digest."""

    id: int
    secret: str
    name: str | None = None
    enterprise_ids: tuple[UUID, ...] = ()
    scopes: tuple[str, ...] = ()
