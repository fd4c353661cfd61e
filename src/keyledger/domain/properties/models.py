from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from keyledger.kit.errors import OutOfScope


@dataclass(frozen=True, slots=True)
class Property:
    id: int
    enterprise_id: UUID
    business_id: int
    name: str
    timezone: str
    collision_check: bool = True


@dataclass(frozen=True, slots=True)
class Scope:
    """The properties a caller may see and change."""

    properties: tuple[Property, ...]
    by_id: dict[int, Property] = field(init=False, repr=False, compare=False)
    by_enterprise: dict[UUID, Property] = field(init=False, repr=False, compare=False)
    by_business: dict[int, Property] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {p.id: p for p in self.properties})
        object.__setattr__(self, "by_enterprise", {p.enterprise_id: p for p in self.properties})
        object.__setattr__(self, "by_business", {p.business_id: p for p in self.properties})

    @property
    def property_ids(self) -> list[int]:
        return list(self.by_id)

    @property
    def is_portfolio(self) -> bool:
        return len(self.properties) > 1

    def narrow_to_enterprises(self, enterprise_ids: Iterable[UUID]) -> Scope:
        """The part of the scope named by ``enterprise_ids``; any enterprise outside it refuses."""
        chosen: dict[UUID, Property] = {}
        for enterprise_id in enterprise_ids:
            found = self.by_enterprise.get(enterprise_id)
            if found is None:
                raise OutOfScope(
                    f"Enterprise {enterprise_id} is outside the scope of the access token.",
                    subject="enterprise",
                )
            chosen[enterprise_id] = found
        return Scope(tuple(chosen.values()))

    def enterprise(self, enterprise_id: UUID) -> Property:
        return self.narrow_to_enterprises([enterprise_id]).properties[0]
