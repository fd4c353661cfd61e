"""Core results to Nexudus JSON."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from keyledger.domain.credentials.models import Credential, VoucherPage
from keyledger.kit.clock import format_utc
from keyledger.web.nexudus.query import ListRequest


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_utc(moment)


def render_voucher(credential: Credential) -> dict[str, Any]:
    return {
        "Id": credential.id,
        "AccessCode": credential.value,
        "BusinessId": credential.property.business_id,
        "Description": credential.description,
        "LastAccess": _time(credential.last_access),
        "MinutesIncluded": credential.minutes_included,
        "MinutesLeft": credential.minutes_left,
        "UserLimit": credential.user_limit,
        "ValidFrom": _time(credential.valid_from),
        "ValidTo": _time(credential.valid_to),
        "CreatedOn": format_utc(credential.created_utc),
        "UpdatedOn": format_utc(credential.updated_utc),
        "UpdatedBy": credential.updated_by,
        "UniqueId": str(credential.uid),
        "SystemId": credential.system_id,
    }


def render_record(credential: Credential) -> dict[str, Any]:
    return {
        "Id": credential.id,
        "Business": credential.property.business_id,
        "AccessCode": credential.value,
        "Description": credential.description,
        "MinutesIncluded": credential.minutes_included,
        "ValidFrom": _time(credential.valid_from),
        "ValidTo": _time(credential.valid_to),
        "UserLimit": credential.user_limit,
        "MinutesLeft": credential.minutes_left,
        "LastAccess": _time(credential.last_access),
        "CreatedOn": format_utc(credential.created_utc),
        "UpdatedOn": format_utc(credential.updated_utc),
        "UpdatedBy": credential.updated_by,
        "UniqueId": str(credential.uid),
        "SystemId": credential.system_id,
    }


def render_list(page: VoucherPage, request: ListRequest) -> dict[str, Any]:
    query = request.query
    size, number, total = query.size, query.page, page.total
    pages = math.ceil(total / size)
    first = (number - 1) * size + 1 if page.vouchers else 0
    return {
        "Records": [render_record(v) for v in page.vouchers],
        "CurrentPageSize": size,
        "CurrentPage": number,
        "CurrentOrderField": request.order_field,
        "CurrentSortDirection": -1 if query.descending else 1,
        "FirstItem": first,
        "HasNextPage": number < pages,
        "HasPreviousPage": number > 1,
        "LastItem": first + len(page.vouchers) - 1 if page.vouchers else 0,
        "PageNumber": number,
        "PageSize": size,
        "TotalItems": total,
        "TotalPages": pages,
    }


def created(credential: Credential) -> dict[str, Any]:
    return {
        "Status": 200,
        "WasSuccessful": True,
        "Message": f"Record '{credential.value}' has been succesfully created.",
        "Value": {"Id": credential.id},
    }


def updated(credential: Credential) -> dict[str, Any]:
    return {
        "Status": 200,
        "WasSuccessful": True,
        "Message": f"Record '{credential.value}' has been succesfully updated.",
        "Value": {"Id": credential.id},
    }


DELETED = {
    "Status": 200,
    "WasSuccessful": True,
    "Message": "The record was deleted successfully.",
    "Value": None,
    "OpenInDialog": False,
    "RedirectURL": None,
    "JavaScript": None,
    "Errors": None,
}
