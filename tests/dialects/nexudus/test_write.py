"""Create (JSON and form), replace, delete: envelopes, cleared properties, minutes, unique codes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import NEXUDUS_PATH, Deployment, NexudusTenant, make_nexudus_tenant


def record(space: NexudusTenant, voucher_id: int) -> dict[str, Any]:
    response = space.get(f"/{voucher_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_create_from_a_form_and_ignore_read_only_properties(space: NexudusTenant) -> None:
    response = space.http.post(
        NEXUDUS_PATH,
        data={
            "BusinessId": str(space.business_id),
            "AccessCode": "FORM-1",
            "MinutesIncluded": "45",
            "Description": "",
            "UserLimit": "3",
            "ValidTo": "2031-01-01T12:00",
            "MinutesLeft": "9999",
            "UniqueId": "00000000-0000-0000-0000-000000000000",
            "UpdatedBy": "mallory",
            "Id": "987654321",
        },
        auth=space.auth,
    )
    assert response.status_code == 200, response.text
    made = record(space, response.json()["Value"]["Id"])
    assert made["AccessCode"] == "FORM-1"
    assert made["MinutesIncluded"] == made["MinutesLeft"] == 45
    assert made["Description"] is None
    assert made["UserLimit"] == 3
    assert made["ValidTo"] == "2031-01-01T12:00:00Z"
    assert made["UniqueId"] != "00000000-0000-0000-0000-000000000000"
    assert made["UpdatedBy"] == space.email
    assert made["Id"] != 987654321
    assert made["LastAccess"] is None


def test_put_replaces_and_clears_what_is_left_out(space: NexudusTenant) -> None:
    voucher_id = space.create_id(
        AccessCode="R-1",
        MinutesIncluded=100,
        Description="desk",
        UserLimit=3,
        ValidFrom="2030-01-01T00:00:00Z",
        ValidTo="2030-02-01T00:00:00Z",
        SystemId="ext-1",
    )
    response = space.put(
        Id=voucher_id, BusinessId=space.business_id, AccessCode="R-2", MinutesIncluded=100
    )
    assert response.status_code == 200, response.text
    assert response.json()["Message"] == "Record 'R-2' has been succesfully updated."
    after = record(space, voucher_id)
    assert after["AccessCode"] == "R-2"
    for cleared in ("Description", "UserLimit", "ValidFrom", "ValidTo", "SystemId"):
        assert after[cleared] is None, cleared
    assert after["MinutesLeft"] == 100


@pytest.mark.parametrize(("included", "left"), [(150, 150), (40, 40), (0, 0)])
def test_minutes_left_follows_minutes_included(
    space: NexudusTenant, included: int, left: int
) -> None:
    voucher_id = space.create_id(MinutesIncluded=100)
    body = {"Id": voucher_id, "BusinessId": space.business_id, "AccessCode": "M-1"}
    assert space.put(**body, MinutesIncluded=included).status_code == 200
    assert record(space, voucher_id)["MinutesLeft"] == left


def test_minutes_left_never_goes_below_zero(space: NexudusTenant) -> None:
    voucher_id = space.create_id(MinutesIncluded=100)
    body = {"Id": voucher_id, "BusinessId": space.business_id, "AccessCode": "Z-1"}
    assert space.command("ADD_MINUTES", [voucher_id], Minutes=20).status_code == 200
    assert space.put(**body, MinutesIncluded=10).status_code == 200  # 120 → 10: left 120-110
    assert record(space, voucher_id)["MinutesLeft"] == 10
    assert space.put(**body, MinutesIncluded=0).status_code == 200
    assert record(space, voucher_id)["MinutesLeft"] == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"BusinessId": None, "AccessCode": "x", "MinutesIncluded": 5},
            [("BusinessId", "may not be null or empty", None)],
        ),
        (
            {"BusinessId": "B", "AccessCode": "x", "MinutesIncluded": 5},
            [("BusinessId", "is not a valid integer", "B")],
        ),
        # A JSON boolean is no number (pydantic alone read true as 1; an attacker's review).
        (
            {"AccessCode": "x", "MinutesIncluded": True},
            [("MinutesIncluded", "is not a valid integer", True)],
        ),
        (
            {"AccessCode": "x", "MinutesIncluded": 5, "UserLimit": True},
            [("UserLimit", "is not a valid integer", True)],
        ),
        (
            {"BusinessId": False, "AccessCode": "x", "MinutesIncluded": 5},
            [("BusinessId", "is not a valid integer", False)],
        ),
        ({"MinutesIncluded": 5}, [("AccessCode", "may not be null or empty", None)]),
        (
            {"AccessCode": "", "MinutesIncluded": 5},
            [("AccessCode", "may not be null or empty", "")],
        ),
        (
            {"AccessCode": None, "MinutesIncluded": None},
            [
                ("AccessCode", "may not be null or empty", None),
                ("MinutesIncluded", "may not be null or empty", None),
            ],
        ),
        (
            {"AccessCode": "x", "MinutesIncluded": -1},
            [("MinutesIncluded", "input should be greater than or equal to 0", -1)],
        ),
        (
            {"AccessCode": "x", "MinutesIncluded": 5, "UserLimit": 0},
            [("UserLimit", "input should be greater than or equal to 1", 0)],
        ),
        (
            {"AccessCode": "x", "MinutesIncluded": 5, "ValidFrom": "soon"},
            [("ValidFrom", "is not a valid date and time", "soon")],
        ),
        (
            {
                "AccessCode": "x",
                "MinutesIncluded": 5,
                "ValidFrom": "2030-01-02T00:00:00Z",
                "ValidTo": "2030-01-01T00:00:00Z",
            },
            [("ValidTo", "must be after ValidFrom", "2030-01-01T00:00:00Z")],
        ),
        (
            {"AccessCode": "x" * 256, "MinutesIncluded": 5},
            [("AccessCode", "must have at most 255 characters", "x" * 256)],
        ),
    ],
)
def test_invalid_create_is_400_naming_each_property(
    space: NexudusTenant, body: dict[str, Any], expected: list[tuple[str, str, Any]]
) -> None:
    payload = {"BusinessId": space.business_id, **body}
    response = space.http.post(NEXUDUS_PATH, json=payload, auth=space.auth)
    assert response.status_code == 400, response.text
    envelope = response.json()
    assert envelope["Status"] == 400
    assert envelope["WasSuccessful"] is False
    assert envelope["Value"] is None
    assert [
        (e["PropertyName"], e["Message"], e["AttemptedValue"]) for e in envelope["Errors"]
    ] == expected
    assert envelope["Message"] == "; ".join(f"{name}: {message}" for name, message, _ in expected)
    assert space.get().json()["TotalItems"] == 0


def test_put_with_required_properties_left_out_is_400(space: NexudusTenant) -> None:
    voucher_id = space.create_id(AccessCode="KEEP", MinutesIncluded=10)
    response = space.put(Id=voucher_id, BusinessId=space.business_id)
    assert response.status_code == 400
    names = [e["PropertyName"] for e in response.json()["Errors"]]
    assert names == ["AccessCode", "MinutesIncluded"]
    assert record(space, voucher_id)["AccessCode"] == "KEEP"
    moved = space.put(Id=voucher_id, BusinessId=1, AccessCode="KEEP", MinutesIncluded=10)
    assert moved.status_code == 400
    assert moved.json()["Errors"][0]["PropertyName"] == "BusinessId"


def test_ids_beyond_any_record_are_refused_not_crashed(space: NexudusTenant) -> None:
    """Found by schemathesis at full size: an id beyond 64 bits reached SQLite (500)."""
    voucher_id = space.create_id(AccessCode="KEEP", MinutesIncluded=10)
    huge = 2**64
    replaced = space.put(Id=huge, BusinessId=space.business_id, AccessCode="X", MinutesIncluded=1)
    assert replaced.status_code == 400, replaced.text
    assert replaced.json()["Errors"][0]["PropertyName"] == "Id"
    assert space.get(str(huge)).status_code == 404
    assert space.delete(huge).status_code == 404
    commanded = space.command("ResetMinutes", ids=[huge])
    assert commanded.status_code == 400, commanded.text
    assert record(space, voucher_id)["AccessCode"] == "KEEP"
    assert space.get().json()["TotalItems"] == 1


def test_access_code_is_unique_among_live_vouchers(space: NexudusTenant) -> None:
    first = space.create_id(AccessCode="SAME")
    duplicate = space.create(AccessCode="SAME")
    assert duplicate.status_code == 400
    assert duplicate.json()["Errors"][0]["PropertyName"] == "AccessCode"
    other = space.create_id(AccessCode="OTHER")
    renamed = space.put(
        Id=other, BusinessId=space.business_id, AccessCode="SAME", MinutesIncluded=1
    )
    assert renamed.status_code == 400
    assert space.delete(first).status_code == 200
    assert space.create(AccessCode="SAME").status_code == 200  # free again once deleted


def test_the_same_code_may_live_in_two_businesses(
    space: NexudusTenant, shared_deployment: Deployment
) -> None:
    neighbour = make_nexudus_tenant(shared_deployment)
    assert space.create(AccessCode="SHARED-CODE").status_code == 200
    assert neighbour.create(AccessCode="SHARED-CODE").status_code == 200


def test_delete_hides_the_record(space: NexudusTenant) -> None:
    voucher_id = space.create_id()
    assert space.delete(voucher_id).json()["WasSuccessful"] is True
    assert space.get(f"/{voucher_id}").status_code == 404
    assert space.delete(voucher_id).status_code == 404
    assert space.get().json()["TotalItems"] == 0
