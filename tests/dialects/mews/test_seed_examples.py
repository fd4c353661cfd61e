"""Every request example of seed 001, sent verbatim to a fresh demo store over HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.mews_schema import assert_valid_mews_response
from tests.seeds import mews_examples
from tests.support import Deployment

DEMO_HOTEL = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def _post_verbatim(demo: Deployment, operation: str) -> tuple[int, dict[str, Any], str]:
    example = mews_examples()[operation]
    response = demo.http.post(
        example.path, content=example.raw_request, headers={"Content-Type": "application/json"}
    )
    return response.status_code, response.json(), response.headers["Request-Id"]


def _recent(stamp: object) -> bool:
    assert isinstance(stamp, str) and stamp.endswith("Z") and len(stamp) == 20
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return abs(datetime.now(UTC) - moment) < timedelta(minutes=2)


def test_get_all_example_returns_the_first_demo_token(demo: Deployment) -> None:
    status, body, request_id = _post_verbatim(demo, "getAll")
    assert status == 200
    assert uuid.UUID(request_id)
    assert body == {
        "ResourceAccessTokens": [
            {
                "Id": "90eff5aa-36b4-4689-80c0-ab3a00bb412e",
                "EnterpriseId": DEMO_HOTEL,
                "ServiceOrderId": "65eff5aa-36b4-4689-80c0-ab3a00bb412e",
                "CompanionshipId": None,
                "ResourceId": None,
                "Type": "RfidTag",
                "Value": "04A224B2C15E80",
                "SerialNumber": "CARD-0001",
                "ValidityStartUtc": "2020-02-14T14:00:00Z",
                "ValidityEndUtc": "2020-02-18T10:00:00Z",
                "Permissions": {"Bed": False, "Room": True, "Floor": True, "Building": True},
                "CreatedUtc": "2020-01-06T09:00:00Z",
                "UpdatedUtc": "2020-01-06T09:00:00Z",
                "IsActive": True,
            }
        ],
        "Cursor": "90eff5aa-36b4-4689-80c0-ab3a00bb412e",
    }
    assert_valid_mews_response("getAll", 200, body)


def test_add_example_lands_in_the_service_orders_enterprise(demo: Deployment) -> None:
    example = mews_examples()["add"]
    status, body, _ = _post_verbatim(demo, "add")
    assert status == 200
    assert_valid_mews_response("add", 200, body)
    (token,) = body["ResourceAccessTokens"]
    sent = example.request["ResourceAccessTokenParameters"][0]
    assert uuid.UUID(token["Id"]) != uuid.UUID(sent["ServiceOrderId"])
    assert token["EnterpriseId"] == DEMO_HOTEL
    for name in (
        "ServiceOrderId",
        "CompanionshipId",
        "ResourceId",
        "Type",
        "Value",
        "SerialNumber",
        "ValidityStartUtc",
        "ValidityEndUtc",
    ):
        assert token[name] == sent[name], name
    assert token["Permissions"] == {"Bed": True, "Room": False, "Floor": False, "Building": False}
    assert token["IsActive"] is True
    assert _recent(token["CreatedUtc"])
    assert token["UpdatedUtc"] == token["CreatedUtc"]
    # The example's response shape, field for field (values differ only where the server decides).
    assert set(token) == set(example.response["ResourceAccessTokens"][0]) | {
        "EnterpriseId",
        "IsActive",
    }
    listed = demo.http.post(
        example.path.replace("/add", "/getAll"),
        json={
            **{k: example.request[k] for k in ("ClientToken", "AccessToken", "Client")},
            "ResourceAccessTokenIds": [token["Id"]],
            "Limitation": {"Count": 10},
        },
    ).json()
    assert listed["ResourceAccessTokens"] == [token]


def test_update_example_changes_validity_and_permissions(demo: Deployment) -> None:
    status, body, _ = _post_verbatim(demo, "update")
    assert status == 200
    assert_valid_mews_response("update", 200, body)
    (token,) = body["ResourceAccessTokens"]
    assert token["Id"] == "35d4b117-4e60-44a3-9580-c582117eff98"
    assert token["EnterpriseId"] == DEMO_HOTEL
    assert token["ServiceOrderId"] == "35d4b117-4e60-44a3-9580-c582117eff98"
    assert token["CompanionshipId"] == "25d4b117-4e60-44a3-9580-c582117eff98"
    assert token["ResourceId"] == "65d4b117-4e60-44a3-9580-c582117eff98"
    assert token["Type"] == "PinCode"
    assert token["Value"] == "4711#"
    assert token["SerialNumber"] is None
    assert token["ValidityStartUtc"] == "2020-10-09T22:00:00Z"
    assert token["ValidityEndUtc"] == "2020-10-10T22:00:00Z"
    assert token["Permissions"] == {"Bed": True, "Room": False, "Floor": False, "Building": False}
    assert token["CreatedUtc"] == "2020-10-01T11:48:57Z"
    assert _recent(token["UpdatedUtc"])
    assert token["IsActive"] is True


def test_delete_example_soft_deletes_the_token(demo: Deployment) -> None:
    example = mews_examples()["delete"]
    status, body, _ = _post_verbatim(demo, "delete")
    assert status == 200
    assert body == {}
    assert_valid_mews_response("delete", 200, body)
    credentials = {k: example.request[k] for k in ("ClientToken", "AccessToken", "Client")}
    listed = demo.http.post(
        example.path.replace("/delete", "/getAll"),
        json={
            **credentials,
            "ResourceAccessTokenIds": example.request["Ids"],
            "ActivityStates": ["Deleted"],
            "Limitation": {"Count": 10},
        },
    ).json()
    (token,) = listed["ResourceAccessTokens"]
    assert token["Id"] == "35d4b117-4e60-44a3-9580-c582117eff98"
    assert token["IsActive"] is False
    assert _recent(token["UpdatedUtc"])
    active = demo.http.post(
        example.path.replace("/delete", "/getAll"),
        json={
            **credentials,
            "ResourceAccessTokenIds": example.request["Ids"],
            "ActivityStates": ["Active"],
            "Limitation": {"Count": 10},
        },
    ).json()
    assert active == {"ResourceAccessTokens": [], "Cursor": None}
    # Deleting again is a safe retry.
    again = demo.http.post(example.path, content=example.raw_request)
    assert again.status_code == 200
    assert again.json() == {}


def test_demo_is_provisioned_once_per_store(demo: Deployment) -> None:
    from keyledger.cli.demo import provision_demo

    _post_verbatim(demo, "delete")
    assert provision_demo(demo.store) is False
    example = mews_examples()["getAll"]
    credentials = {k: example.request[k] for k in ("ClientToken", "AccessToken", "Client")}
    listed = demo.http.post(
        example.path,
        json={
            **credentials,
            "ResourceAccessTokenIds": ["35d4b117-4e60-44a3-9580-c582117eff98"],
            "Limitation": {"Count": 10},
        },
    ).json()
    assert listed["ResourceAccessTokens"][0]["IsActive"] is False
