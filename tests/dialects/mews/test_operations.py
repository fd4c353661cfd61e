"""Semantics of getAll, add, update and delete beyond the seed examples."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.mews_schema import assert_valid_mews_response
from tests.support import (
    WINDOW,
    Deployment,
    Tenant,
    add,
    assert_error,
    get_all,
    make_tenant,
    token_parameters,
)


def ids(tokens: list[dict[str, Any]]) -> set[str]:
    return {token["Id"] for token in tokens}


def test_add_returns_tokens_in_request_order_with_defaults(tenant: Tenant) -> None:
    items = [
        token_parameters(
            value=f"{n}#", SerialNumber=f"S{n}", Permissions={"Floor": {"Value": True}}
        )
        for n in range(5)
    ]
    tokens = add(tenant, *items, LanguageCode="en-US")
    assert [t["Value"] for t in tokens] == [f"{n}#" for n in range(5)]
    assert [t["SerialNumber"] for t in tokens] == [f"S{n}" for n in range(5)]
    assert {t["EnterpriseId"] for t in tokens} == {str(tenant.enterprise_id)}
    assert all(
        t["Permissions"] == {"Bed": False, "Room": False, "Floor": True, "Building": False}
        for t in tokens
    )
    assert all(t["CompanionshipId"] is None and t["ResourceId"] is None for t in tokens)
    assert len(ids(tokens)) == 5


def test_timestamps_with_offsets_and_fractions_are_stored_in_utc_seconds(tenant: Tenant) -> None:
    (token,) = add(
        tenant,
        token_parameters(start="2030-01-01T15:00:00.789+01:00", end="2030-01-02T00:00:00.5-02:00"),
    )
    assert token["ValidityStartUtc"] == "2030-01-01T14:00:00Z"
    assert token["ValidityEndUtc"] == "2030-01-02T02:00:00Z"


def test_get_all_filters_combine_and_states_default_to_both(tenant: Tenant) -> None:
    order = uuid.uuid4()
    first, second = add(
        tenant, token_parameters(service_order=order), token_parameters(service_order=order)
    )
    (other,) = add(tenant, token_parameters())
    assert tenant.mews("delete", Ids=[second["Id"]]).status_code == 200
    assert ids(get_all(tenant, ServiceOrderIds=[str(order)])) == {first["Id"], second["Id"]}
    assert ids(get_all(tenant, ServiceOrderIds=[str(order)], ActivityStates=["Active"])) == {
        first["Id"]
    }
    assert ids(get_all(tenant, ServiceOrderIds=[str(order)], ActivityStates=["Deleted"])) == {
        second["Id"]
    }
    assert ids(
        get_all(
            tenant, ServiceOrderIds=[str(order)], ResourceAccessTokenIds=[other["Id"], first["Id"]]
        )
    ) == {first["Id"]}
    assert get_all(tenant, ResourceAccessTokenIds=[str(uuid.uuid4())]) == []
    assert ids(get_all(tenant, CollidingUtc=WINDOW)) == {first["Id"], second["Id"], other["Id"]}


def test_colliding_interval_is_half_open_overlap(tenant: Tenant) -> None:
    (token,) = add(
        tenant, token_parameters(start="2030-01-10T12:00:00Z", end="2030-01-12T12:00:00Z")
    )

    def colliding(start: str, end: str) -> bool:
        found = get_all(tenant, CollidingUtc={"StartUtc": start, "EndUtc": end})
        return token["Id"] in ids(found)

    assert colliding("2030-01-01T00:00:00Z", "2030-01-10T12:00:01Z")
    assert not colliding("2030-01-01T00:00:00Z", "2030-01-10T12:00:00Z")  # ends as validity starts
    assert not colliding("2030-01-12T12:00:00Z", "2030-01-20T00:00:00Z")  # starts as validity ends
    assert colliding("2030-01-12T11:59:59Z", "2030-01-20T00:00:00Z")
    assert colliding("2030-01-11T00:00:00Z", "2030-01-11T00:00:01Z")  # inside
    assert colliding("2030-01-10T12:00:00Z", "2030-01-10T12:00:00Z")  # instant at start: valid
    assert not colliding("2030-01-12T12:00:00Z", "2030-01-12T12:00:00Z")  # instant at end: not


def test_updated_interval_is_half_open_with_equality_mode(tenant: Tenant) -> None:
    (token,) = add(tenant, token_parameters())
    stamp = token["UpdatedUtc"]
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    before = (moment - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    after = (moment + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(get_all(tenant, UpdatedUtc={"StartUtc": stamp, "EndUtc": stamp})) == {token["Id"]}
    # The end is exclusive, the start inclusive.
    assert get_all(tenant, UpdatedUtc={"StartUtc": before, "EndUtc": stamp}) == []
    assert ids(get_all(tenant, UpdatedUtc={"StartUtc": stamp, "EndUtc": after})) == {token["Id"]}


def test_update_values_keep_set_and_move_updated_utc(tenant: Tenant) -> None:
    (token,) = add(tenant, token_parameters(value="1111#"))
    time.sleep(1.1)
    same = tenant.mews(
        "update",
        ResourceAccessTokenUpdates=[
            {
                "ResourceAccessTokenId": token["Id"],
                "Value": None,
                "Permissions": {"Room": {"Value": True}},
            }
        ],
    )
    assert same.status_code == 200
    assert same.json()["ResourceAccessTokens"] == [token]  # nothing changed, nothing moved
    changed = tenant.mews(
        "update",
        ResourceAccessTokenUpdates=[
            {
                "ResourceAccessTokenId": {"Value": token["Id"]},  # the older update-value form
                "Value": {"Value": "2222#"},
                "ValidityEndUtc": {"Value": "2030-01-06T10:00:00Z"},
                "Permissions": {"Bed": {"Value": True}, "Room": None},
            }
        ],
    )
    assert changed.status_code == 200, changed.text
    assert_valid_mews_response("update", 200, changed.json())
    (after,) = changed.json()["ResourceAccessTokens"]
    assert after["Value"] == "2222#"
    assert after["ValidityStartUtc"] == token["ValidityStartUtc"]
    assert after["ValidityEndUtc"] == "2030-01-06T10:00:00Z"
    assert after["Permissions"] == {"Bed": True, "Room": True, "Floor": False, "Building": False}
    assert after["CreatedUtc"] == token["CreatedUtc"]
    assert after["UpdatedUtc"] > token["UpdatedUtc"]
    assert get_all(tenant, ResourceAccessTokenIds=[token["Id"]]) == [after]


def test_update_applies_items_in_order(tenant: Tenant) -> None:
    (token,) = add(tenant, token_parameters(value="1#"))
    response = tenant.mews(
        "update",
        ResourceAccessTokenUpdates=[
            {"ResourceAccessTokenId": token["Id"], "Value": {"Value": "2#"}},
            {"ResourceAccessTokenId": token["Id"], "Value": {"Value": "3#"}},
        ],
    )
    assert [t["Value"] for t in response.json()["ResourceAccessTokens"]] == ["3#", "3#"]
    assert get_all(tenant, ResourceAccessTokenIds=[token["Id"]])[0]["Value"] == "3#"


def test_prefer_return_minimal(tenant: Tenant) -> None:
    minimal = {"Prefer": "return=minimal"}
    empty = tenant.mews(
        "getAll", headers=minimal, ServiceOrderIds=[str(uuid.uuid4())], Limitation={"Count": 5}
    )
    assert empty.status_code == 204
    assert empty.content == b""
    assert empty.headers["Request-Id"]
    (token,) = add(tenant, token_parameters())
    full = tenant.mews(
        "getAll", headers=minimal, ResourceAccessTokenIds=[token["Id"]], Limitation={"Count": 5}
    )
    assert full.status_code == 200
    assert full.json()["Cursor"] == token["Id"]
    deleted = tenant.mews("delete", headers=minimal, Ids=[token["Id"]])
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert get_all(tenant, ResourceAccessTokenIds=[token["Id"]])[0]["IsActive"] is False


def test_portfolio_add_resolves_the_enterprise(shared_deployment: Deployment) -> None:
    portfolio = make_tenant(shared_deployment, properties=2)
    first, second = portfolio.enterprise_id, portfolio.extra_enterprises[0]
    order = uuid.uuid4()
    unknown = portfolio.mews(
        "add", ResourceAccessTokenParameters=[token_parameters(service_order=order)]
    )
    assert_error(unknown, 400, "Invalid EnterpriseId: Item 0: service order")
    (placed,) = add(portfolio, token_parameters(service_order=order), EnterpriseId=str(second))
    assert placed["EnterpriseId"] == str(second)
    (inferred,) = add(portfolio, token_parameters(service_order=order))
    assert inferred["EnterpriseId"] == str(second)
    outsider = make_tenant(shared_deployment)
    refused = portfolio.mews(
        "add",
        ResourceAccessTokenParameters=[token_parameters()],
        EnterpriseId=str(outsider.enterprise_id),
    )
    assert_error(refused, 403, f"Enterprise {outsider.enterprise_id} is outside the scope")
    # EnterpriseIds narrows getAll to part of the portfolio.
    (in_first,) = add(portfolio, token_parameters(), EnterpriseId=str(first))
    narrowed = get_all(portfolio, CollidingUtc=WINDOW, EnterpriseIds=[str(first)])
    assert ids(narrowed) == {in_first["Id"]}
    assert ids(get_all(portfolio, CollidingUtc=WINDOW)) == {
        placed["Id"],
        inferred["Id"],
        in_first["Id"],
    }


def test_update_enterprise_must_be_the_tokens(shared_deployment: Deployment) -> None:
    portfolio = make_tenant(shared_deployment, properties=2)
    (token,) = add(portfolio, token_parameters(), EnterpriseId=str(portfolio.enterprise_id))
    change = [{"ResourceAccessTokenId": token["Id"], "Value": {"Value": "42#"}}]
    wrong = portfolio.mews(
        "update",
        ResourceAccessTokenUpdates=change,
        EnterpriseId=str(portfolio.extra_enterprises[0]),
    )
    assert_error(wrong, 400, "Invalid EnterpriseId: Item 0: token")
    outside = portfolio.mews(
        "update", ResourceAccessTokenUpdates=change, EnterpriseId=str(uuid.uuid4())
    )
    assert_error(outside, 403, "Enterprise")
    right = portfolio.mews(
        "update", ResourceAccessTokenUpdates=change, EnterpriseId=str(portfolio.enterprise_id)
    )
    assert right.status_code == 200
    assert right.json()["ResourceAccessTokens"][0]["Value"] == "42#"
