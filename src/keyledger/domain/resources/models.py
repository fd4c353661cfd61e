from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class ResourceKind(StrEnum):
    BUILDING = "Building"
    FLOOR = "Floor"
    ROOM = "Room"
    BED = "Bed"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    ResourceKind.BUILDING: 0,
    ResourceKind.FLOOR: 1,
    ResourceKind.ROOM: 2,
    ResourceKind.BED: 3,
}


@dataclass(frozen=True, slots=True)
class Resource:
    property_id: int
    uid: UUID
    parent_uid: UUID | None
    kind: ResourceKind
    name: str


@dataclass(frozen=True, slots=True)
class ResourceDraft:
    uid: UUID
    parent_uid: UUID | None
    kind: ResourceKind
    name: str
