"""The resource tree as CSV: ``EnterpriseId,Id,ParentId,Kind,Name`` with a header line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from uuid import UUID

from keyledger.domain.properties.models import Property
from keyledger.domain.resources.models import Resource, ResourceDraft, ResourceKind
from keyledger.kit.errors import InvalidInput

HEADER = ["EnterpriseId", "Id", "ParentId", "Kind", "Name"]
MAX_ROWS = 100_000


def _uuid(text: str, line: int, column: str, *, optional: bool = False) -> UUID | None:
    if optional and not text.strip():
        return None
    try:
        return UUID(text.strip())
    except ValueError:
        raise InvalidInput(f"line {line}: {column} {text!r} is not a uuid", subject="csv") from None


def parse(text: str, properties: Mapping[UUID, Property]) -> dict[Property, list[ResourceDraft]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != HEADER:
        raise InvalidInput(f"line 1: the header must be {','.join(HEADER)}", subject="csv")
    batches: dict[Property, list[ResourceDraft]] = {}
    for line, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if line > MAX_ROWS:
            raise InvalidInput(f"more than {MAX_ROWS} rows", subject="csv")
        if len(row) != len(HEADER):
            raise InvalidInput(f"line {line}: expected {len(HEADER)} columns", subject="csv")
        enterprise = _uuid(row[0], line, "EnterpriseId")
        target = properties.get(enterprise)  # type: ignore[arg-type]
        if target is None:
            raise InvalidInput(f"line {line}: unknown enterprise {row[0]}", subject="csv")
        try:
            kind = ResourceKind(row[3].strip())
        except ValueError:
            raise InvalidInput(
                f"line {line}: Kind must be Building, Floor, Room or Bed", subject="csv"
            ) from None
        uid = _uuid(row[1], line, "Id")
        assert uid is not None
        batches.setdefault(target, []).append(
            ResourceDraft(
                uid=uid,
                parent_uid=_uuid(row[2], line, "ParentId", optional=True),
                kind=kind,
                name=row[4].strip(),
            )
        )
    return batches


def render(resources: Iterable[Resource], properties: Mapping[int, Property]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for resource in resources:
        writer.writerow(
            [
                properties[resource.property_id].enterprise_id,
                resource.uid,
                resource.parent_uid or "",
                resource.kind.value,
                resource.name,
            ]
        )
    return out.getvalue()
