"""Every command, and how each one refuses bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyledger.domain.credentials.vouchers import CODE_ALPHABET, CODE_LENGTH
from tests.support import NEXUDUS_PATH, Deployment, NexudusTenant, make_nexudus_tenant


def record(space: NexudusTenant, voucher_id: int) -> dict[str, Any]:
    body: dict[str, Any] = space.get(f"/{voucher_id}").json()
    return body


def succeeded(
    space: NexudusTenant, key: str, ids: list[int] | None = None, **params: Any
) -> dict[str, Any]:
    response = space.command(key, ids, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["WasSuccessful"] is True
    assert body["UpdatedBy"] == space.email
    return body


def refused(
    space: NexudusTenant, key: str, ids: list[int] | None = None, **params: Any
) -> dict[str, Any]:
    response = space.command(key, ids, **params)
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["WasSuccessful"] is False
    return body


def test_commands_describe_their_parameters(space: NexudusTenant) -> None:
    described = {c["Key"]: c for c in space.get("/commands").json()}
    assert described["ADD_MINUTES"]["RequiresParameters"] == [
        {"Name": "Minutes", "Type": "int", "Required": True}
    ]
    assert described["EXTEND_VALIDITY"]["RequiresParameters"][0]["Type"] == "datetime"
    assert described["BULK_CREATE"]["NeedsEntitiesToRun"] is False
    assert [p["Name"] for p in described["BULK_CREATE"]["RequiresParameters"][:2]] == [
        "Count",
        "Minutes",
    ]
    assert described["RESET_MINUTES"]["RequiresParameters"] == []


def test_add_and_reset_minutes(space: NexudusTenant) -> None:
    first, second = space.create_id(MinutesIncluded=60), space.create_id(MinutesIncluded=30)
    body = succeeded(space, "ADD_MINUTES", [first, second], Minutes=15)
    assert body["Value"] == {"Id": first, "Ids": [first, second]}
    assert (record(space, first)["MinutesIncluded"], record(space, first)["MinutesLeft"]) == (
        75,
        75,
    )
    assert record(space, second)["MinutesLeft"] == 45
    space.put(Id=first, BusinessId=space.business_id, AccessCode="A", MinutesIncluded=75)
    succeeded(space, "RESET_MINUTES", [first])
    assert record(space, first)["MinutesLeft"] == 75
    positional = space.http.post(
        f"{NEXUDUS_PATH}/runcommand",
        json={"Key": "add_minutes", "Ids": [second], "Parameters": [{"Type": "int", "Value": "5"}]},
        auth=space.auth,
    )
    assert positional.status_code == 200
    assert record(space, second)["MinutesIncluded"] == 50


def test_expire_now_and_extend_validity(space: NexudusTenant) -> None:
    voucher_id = space.create_id(ValidFrom="2020-01-01T00:00:00Z", ValidTo="2099-01-01T00:00:00Z")
    succeeded(space, "EXPIRE_NOW", [voucher_id])
    valid_to = datetime.strptime(record(space, voucher_id)["ValidTo"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(valid_to.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    succeeded(space, "EXTEND_VALIDITY", [voucher_id], ValidTo="2031-05-06T07:08:09Z")
    assert record(space, voucher_id)["ValidTo"] == "2031-05-06T07:08:09Z"
    before = refused(space, "EXTEND_VALIDITY", [voucher_id], ValidTo="2019-01-01T00:00:00Z")
    assert before["Errors"][0]["PropertyName"] == "ValidTo"
    assert record(space, voucher_id)["ValidTo"] == "2031-05-06T07:08:09Z"


def test_bulk_create_makes_unique_unambiguous_codes(space: NexudusTenant) -> None:
    body = succeeded(space, "BULK_CREATE", Count=25, Minutes=90, Description="Event", UserLimit=2)
    codes, ids = body["Value"]["AccessCodes"], body["Value"]["Ids"]
    assert len(codes) == len(set(codes)) == len(ids) == 25
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set("01OIL") & set("".join(codes))
    made = record(space, ids[0])
    assert (
        made["MinutesIncluded"],
        made["MinutesLeft"],
        made["Description"],
        made["UserLimit"],
    ) == (
        90,
        90,
        "Event",
        2,
    )


def test_bulk_create_needs_a_business_when_the_user_has_several(
    shared_deployment: Deployment, space: NexudusTenant
) -> None:
    from tests.support import add_user_to

    second = make_nexudus_tenant(shared_deployment)
    both = space.as_user(*add_user_to(shared_deployment, [space.business_id, second.business_id]))
    ambiguous = refused(both, "BULK_CREATE", Count=1, Minutes=5)
    assert ambiguous["Errors"][0]["PropertyName"] == "BusinessId"
    chosen = succeeded(both, "BULK_CREATE", Count=1, Minutes=5, BusinessId=second.business_id)
    assert second.get(AccessToken_Id=str(chosen["Value"]["Ids"][0])).json()["TotalItems"] == 1


@pytest.mark.parametrize(
    ("key", "params", "property_name"),
    [
        ("NO_SUCH_COMMAND", {}, "Key"),
        ("ADD_MINUTES", {}, "Minutes"),
        ("ADD_MINUTES", {"Minutes": 0}, "Minutes"),
        ("ADD_MINUTES", {"Minutes": "many"}, "Minutes"),
        ("EXTEND_VALIDITY", {"ValidTo": "next week"}, "ValidTo"),
        ("BULK_CREATE", {"Count": 1001, "Minutes": 5}, "Count"),
        ("BULK_CREATE", {"Count": 2}, "Minutes"),
    ],
)
def test_commands_refuse_bad_parameters(
    space: NexudusTenant, key: str, params: dict[str, Any], property_name: str
) -> None:
    voucher_id = space.create_id(MinutesIncluded=10)
    body = refused(space, key, [voucher_id], **params)
    assert body["Errors"][0]["PropertyName"] == property_name
    assert record(space, voucher_id)["MinutesIncluded"] == 10
    assert space.get().json()["TotalItems"] == 1


def test_entity_commands_need_ids_and_stop_at_foreign_ones(
    shared_deployment: Deployment, space: NexudusTenant
) -> None:
    assert refused(space, "RESET_MINUTES")["Errors"][0]["PropertyName"] == "Ids"
    mine = space.create_id(MinutesIncluded=10)
    foreign = make_nexudus_tenant(shared_deployment).create_id()
    response = space.command("ADD_MINUTES", [mine, foreign], Minutes=5)
    assert response.status_code == 404
    assert record(space, mine)["MinutesIncluded"] == 10
