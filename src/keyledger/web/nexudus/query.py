"""The list query string: paging, ordering, ``AccessToken_<Property>`` search, ``From_``/``To_``
ranges and ``AccessToken_Id=[...]``. Parameter names match case-insensitively; unknown parameters
are ignored; a malformed value of a known one is a 400 naming it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any
from uuid import UUID

from keyledger.domain.credentials.models import VoucherCondition, VoucherField, VoucherQuery
from keyledger.store.schema import credentials, integer_bounds
from keyledger.web.nexudus.errors import NexudusError, invalid, problem
from keyledger.web.nexudus.schemas import NUMBER_LIMIT
from keyledger.web.nexudus.times import last_second, parse_time

MAX_PAGE_SIZE = 1000


class Kind(Enum):
    TEXT = "text"
    NUMBER = "number"
    TIME = "time"
    UUID = "uuid"


@dataclass(frozen=True)
class Property:
    name: str
    field: VoucherField
    kind: Kind
    ranged: bool = False


PROPERTIES = {
    p.name.lower(): p
    for p in (
        Property("Id", VoucherField.ID, Kind.NUMBER),
        Property("Business", VoucherField.BUSINESS, Kind.NUMBER),
        Property("AccessCode", VoucherField.ACCESS_CODE, Kind.TEXT),
        Property("Description", VoucherField.DESCRIPTION, Kind.TEXT),
        Property("LastAccess", VoucherField.LAST_ACCESS, Kind.TIME, ranged=True),
        Property("MinutesIncluded", VoucherField.MINUTES_INCLUDED, Kind.NUMBER, ranged=True),
        Property("MinutesLeft", VoucherField.MINUTES_LEFT, Kind.NUMBER, ranged=True),
        Property("UserLimit", VoucherField.USER_LIMIT, Kind.NUMBER, ranged=True),
        Property("ValidFrom", VoucherField.VALID_FROM, Kind.TIME, ranged=True),
        Property("ValidTo", VoucherField.VALID_TO, Kind.TIME, ranged=True),
        Property("UniqueId", VoucherField.UNIQUE_ID, Kind.UUID),
        Property("SystemId", VoucherField.SYSTEM_ID, Kind.TEXT),
        Property("CreatedOn", VoucherField.CREATED, Kind.TIME, ranged=True),
        Property("UpdatedOn", VoucherField.UPDATED, Kind.TIME, ranged=True),
        Property("UpdatedBy", VoucherField.UPDATED_BY, Kind.TEXT),
    )
}
PROPERTIES["businessid"] = PROPERTIES["business"]

_ASCENDING = {"ascending": False, "asc": False, "1": False, "0": False}
_DESCENDING = {"descending": True, "desc": True, "-1": True}


@dataclass(frozen=True)
class ListRequest:
    query: VoucherQuery
    order_field: str


#: Filters on 32-bit columns are bounded by them (``integer_bounds``): a value no voucher can
#: hold is refused with a 400 rather than compared (PostgreSQL cannot compare it to an integer).
_BOUNDS = {
    VoucherField.MINUTES_INCLUDED: integer_bounds(credentials.c.minutes_included),
    VoucherField.MINUTES_LEFT: integer_bounds(credentials.c.minutes_left),
    VoucherField.USER_LIMIT: integer_bounds(credentials.c.user_limit),
}


def _number(parameter: str, text: str, field: VoucherField | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise invalid(problem(parameter, "is not a valid integer", text)) from None
    low, high = (-NUMBER_LIMIT, NUMBER_LIMIT)
    if field is not None:
        low, high = _BOUNDS.get(field, (low, high))
    if not low <= value <= high:
        raise invalid(problem(parameter, f"is out of range ({low} to {high})", text))
    return value


def _ids(parameter: str, text: str) -> tuple[int, ...]:
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    parts = inner.split(",")
    if any(not part.strip() for part in parts) and len(parts) > 1:
        raise invalid(problem(parameter, "expects integer ids such as [1,2]", text))
    parts = [part for part in parts if part.strip()]
    if not parts or len(parts) > MAX_PAGE_SIZE:
        raise invalid(problem(parameter, "expects 1 to 1000 ids such as [1,2]", text))
    try:
        return tuple(_number(parameter, part) for part in parts)
    except NexudusError:
        raise invalid(problem(parameter, "expects integer ids such as [1,2]", text)) from None


def _condition(parameter: str, prop: Property, text: str) -> VoucherCondition:
    if prop.kind is Kind.TEXT:
        return VoucherCondition(prop.field, contains=text)
    if prop.kind is Kind.NUMBER:
        return VoucherCondition(prop.field, one_of=(_number(parameter, text, prop.field),))
    if prop.kind is Kind.UUID:
        try:
            return VoucherCondition(prop.field, one_of=(UUID(text.strip()),))
        except ValueError:
            raise invalid(problem(parameter, "is not a valid uuid", text)) from None
    moment, span = _time(parameter, text)
    return VoucherCondition(prop.field, at_least=moment, at_most=last_second(moment, span))


def _time(parameter: str, text: str) -> Any:
    try:
        return parse_time(text)
    except ValueError:
        raise invalid(problem(parameter, "is not a valid date and time", text)) from None


def _bound(parameter: str, prop: Property, text: str, *, upper: bool) -> VoucherCondition:
    if prop.kind is Kind.NUMBER:
        value: Any = _number(parameter, text, prop.field)
    else:
        moment, span = _time(parameter, text)
        # Inclusive bounds at the precision written: To_…=2010-01-01T20:32 includes 20:32:59.
        value = last_second(moment, span) if upper else moment
    if upper:
        return VoucherCondition(prop.field, at_most=value)
    return VoucherCondition(prop.field, at_least=value)


#: The list parameters that hold one value (``dir`` and ``sort`` are one), by lower-cased name:
#: given twice, which would win is a guess (conditions may repeat: they all apply).
_ONE_VALUE = {"page": "page", "size": "size", "orderby": "orderby", "dir": "dir", "sort": "dir"}


def parse_list_request(items: Iterable[tuple[str, str]]) -> ListRequest:
    page, size, order, descending = 1, 25, PROPERTIES["id"], False
    conditions: list[VoucherCondition] = []
    settled: set[str] = set()  # the parameters of one value (page, size, order, direction)
    for raw_name, text in items:
        name = raw_name.lower()
        if name in _ONE_VALUE:
            if _ONE_VALUE[name] in settled:
                raise invalid(problem(raw_name, "is given more than once", text))
            settled.add(_ONE_VALUE[name])
        if text == "" and name not in {"page", "size"}:
            continue
        if name == "page":
            page = _number(raw_name, text)
            if page < 1:
                raise invalid(problem(raw_name, "must be 1 or more", text))
        elif name == "size":
            size = _number(raw_name, text)
            if size < 1:
                raise invalid(problem(raw_name, "must be 1 or more", text))
            size = min(size, MAX_PAGE_SIZE)
        elif name == "orderby":
            found = PROPERTIES.get(text.strip().lower())
            if found is None:
                raise invalid(problem(raw_name, "names no property of an access token", text))
            order = found
        elif name in {"dir", "sort"}:
            key = text.strip().lower()
            if key not in _ASCENDING and key not in _DESCENDING:
                raise invalid(
                    problem(raw_name, "must be ascending, descending, asc, desc, 1, 0 or -1", text)
                )
            descending = key in _DESCENDING
        elif name in {"id", "accesstoken_id"}:
            conditions.append(VoucherCondition(VoucherField.ID, one_of=_ids(raw_name, text)))
        elif name.startswith("accesstoken_") and name[12:] in PROPERTIES:
            conditions.append(_condition(raw_name, PROPERTIES[name[12:]], text))
        elif name.startswith(("from_accesstoken_", "to_accesstoken_")):
            upper = name.startswith("to_")
            prop = PROPERTIES.get(name.split("accesstoken_", 1)[1])
            if prop is None or not prop.ranged:
                raise invalid(problem(raw_name, "is not a range this list supports", text))
            conditions.append(_bound(raw_name, prop, text, upper=upper))
    return ListRequest(
        query=VoucherQuery(
            conditions=tuple(conditions),
            order_by=order.field,
            descending=descending,
            page=page,
            size=size,
        ),
        order_field="Business" if order.field is VoucherField.BUSINESS else order.name,
    )
