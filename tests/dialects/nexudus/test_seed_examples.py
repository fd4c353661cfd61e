"""Each example request of seed 003 against the demo, with the header the seed shows
(``Authentication: Basic …`` for example@nexudus.com / Example1234)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.seeds import nexudus_examples
from tests.support import Deployment

SYSTEM_ID = "{ metadata: { id: 887766, processed: true } }"
FIRST = {
    "Id": 1234567,
    "AccessCode": "00001",
    "Description": "Description",
    "MinutesIncluded": 600,
    "ValidFrom": None,
    "ValidTo": None,
    "UserLimit": 2,
    "MinutesLeft": 600,
    "LastAccess": None,
    "CreatedOn": "2018-07-03T06:23:01Z",
    "UpdatedOn": "2020-01-01T21:57:21Z",
    "UpdatedBy": "System",
    "UniqueId": "d0d0c98d-f01b-4869-9e48-1db584428e9b",
    "SystemId": SYSTEM_ID,
}


def send(demo: Deployment, index: int, *, fill: str = "", **kwargs: Any) -> httpx.Response:
    examples = nexudus_examples()
    method, target = examples.requests[index]
    name, value = examples.auth_header
    return demo.http.request(
        method,
        target.replace("...", fill),
        headers={name: value, "Content-Type": "application/json"},
        **kwargs,
    )


def paging(total: int, records: int) -> dict[str, Any]:
    return {
        "CurrentPageSize": 25,
        "CurrentPage": 1,
        "CurrentOrderField": "Id",
        "CurrentSortDirection": 1,
        "FirstItem": 1 if records else 0,
        "HasNextPage": False,
        "HasPreviousPage": False,
        "LastItem": records,
        "PageNumber": 1,
        "PageSize": 25,
        "TotalItems": total,
        "TotalPages": 1 if total else 0,
    }


def test_find_by_access_code(demo: Deployment) -> None:
    response = send(demo, 0, fill="00001")
    assert response.status_code == 200
    assert response.json() == {
        "Records": [{"Business": 12345678, **FIRST}],
        **paging(1, 1),
    }


def test_find_by_ids(demo: Deployment) -> None:
    response = send(demo, 1)
    assert response.status_code == 200
    body = response.json()
    assert [r["Id"] for r in body["Records"]] == [1234567, 9876541]
    assert body["Records"][0] == {"Business": 12345678, **FIRST}
    second = body["Records"][1]
    assert (second["AccessCode"], second["MinutesIncluded"], second["MinutesLeft"]) == (
        "00002",
        120,
        120,
    )
    assert {k: v for k, v in body.items() if k != "Records"} == paging(2, 2)


def test_get_single(demo: Deployment) -> None:
    response = send(demo, 2)
    assert response.status_code == 200
    assert response.json() == {"BusinessId": 12345678, **FIRST}
    assert list(response.json())[:3] == ["Id", "AccessCode", "BusinessId"]


def test_create(demo: Deployment) -> None:
    body = {
        "BusinessId": 12345678,
        "AccessCode": "00001",
        "Description": "Description",
        "MinutesIncluded": 90,
        "ValidFrom": "2026-12-01T08:00:00Z",
        "ValidTo": "2026-12-31T18:00:00Z",
        "UserLimit": 3,
    }
    taken = send(demo, 3, json=body)
    assert taken.status_code == 400
    assert taken.json() == {
        "Status": 400,
        "Message": "AccessCode: is in use by another voucher of this business",
        "Value": None,
        "WasSuccessful": False,
        "Errors": [
            {
                "AttemptedValue": "00001",
                "Message": "is in use by another voucher of this business",
                "PropertyName": "AccessCode",
            }
        ],
    }
    created = send(demo, 3, json={**body, "AccessCode": "00004"})
    assert created.status_code == 200
    new_id = created.json()["Value"]["Id"]
    assert created.json() == {
        "Status": 200,
        "WasSuccessful": True,
        "Message": "Record '00004' has been succesfully created.",
        "Value": {"Id": new_id},
    }
    record = demo.http.get(
        f"/api/spaces/accesstokens/{new_id}", auth=("example@nexudus.com", "Example1234")
    ).json()
    assert record["AccessCode"] == "00004"
    assert record["MinutesIncluded"] == record["MinutesLeft"] == 90
    assert (record["ValidFrom"], record["ValidTo"]) == (
        "2026-12-01T08:00:00Z",
        "2026-12-31T18:00:00Z",
    )
    assert record["UserLimit"] == 3
    assert record["UpdatedBy"] == "example@nexudus.com"


def test_update_replaces_the_record(demo: Deployment) -> None:
    response = send(
        demo,
        4,
        json={
            "Id": 12345678,
            "BusinessId": 12345678,
            "AccessCode": "00003",
            "Description": "Description",
            "MinutesIncluded": 90,
            "UserLimit": 4,
        },
    )
    assert response.status_code == 200
    assert response.json() == {
        "Status": 200,
        "WasSuccessful": True,
        "Message": "Record '00003' has been succesfully updated.",
        "Value": {"Id": 12345678},
    }
    record = demo.http.get(
        "/api/spaces/accesstokens/12345678", auth=("example@nexudus.com", "Example1234")
    ).json()
    assert record["MinutesIncluded"] == 90
    assert record["MinutesLeft"] == 90  # 60 left + 30 more included
    assert record["Description"] == "Description"
    assert record["UserLimit"] == 4


def test_delete(demo: Deployment) -> None:
    response = send(demo, 5)
    assert response.status_code == 200
    assert response.json() == {
        "Status": 200,
        "WasSuccessful": True,
        "Message": "The record was deleted successfully.",
        "Value": None,
        "OpenInDialog": False,
        "RedirectURL": None,
        "JavaScript": None,
        "Errors": None,
    }
    gone = demo.http.get(
        "/api/spaces/accesstokens/12345678", auth=("example@nexudus.com", "Example1234")
    )
    assert gone.status_code == 404


def test_commands_and_run_command(demo: Deployment) -> None:
    listed = send(demo, 6)
    assert listed.status_code == 200
    keys = [command["Key"] for command in listed.json()]
    assert keys == ["RESET_MINUTES", "ADD_MINUTES", "EXPIRE_NOW", "EXTEND_VALIDITY", "BULK_CREATE"]
    expected_keys = {
        "Key",
        "Name",
        "AppliesOnlyToMultipleEntities",
        "DisplayInDropdown",
        "DisplayInDropdownV2",
        "AppliesOnlyToOneEntity",
        "AppliesOnlyToTwoEntities",
        "DisplayInGrid",
        "NeedsEntitiesToRun",
        "Order",
        "RequiresParameters",
    }
    assert all(set(command) == expected_keys for command in listed.json())
    ran = send(
        demo,
        7,
        json={"Ids": [9876541], "Parameters": [{"Type": "int", "Value": 30}], "Key": "ADD_MINUTES"},
    )
    assert ran.status_code == 200
    body = ran.json()
    assert body["WasSuccessful"] is True
    assert body["Status"] == 200
    assert body["UpdatedBy"] == "example@nexudus.com"
    assert body["Value"] == {"Id": 9876541, "Ids": [9876541]}
    assert body["Errors"] is None
    assert set(body) == {
        "Errors",
        "JavaScript",
        "Message",
        "OpenInDialog",
        "OpenInWindow",
        "RedirectURL",
        "Status",
        "UpdatedBy",
        "UpdatedOn",
        "Value",
        "WasSuccessful",
    }
    record = demo.http.get(
        "/api/spaces/accesstokens/9876541", auth=("example@nexudus.com", "Example1234")
    ).json()
    assert (record["MinutesIncluded"], record["MinutesLeft"]) == (150, 150)
