from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Property:
    id: int
    enterprise_id: UUID
    business_id: int
    name: str
    timezone: str
    collision_check: bool = True
