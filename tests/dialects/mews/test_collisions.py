"""The collision rule on Mews add and update: two active tokens with one Type and Value that
could open the same door at the same time are refused with 403 naming the conflict."""

from __future__ import annotations

import uuid
from typing import Any

from keyledger.domain.properties.service import set_collision_check
from tests.support import Deployment, Tenant, assert_error, building, put, token_parameters, v1


def params(
    value: str,
    resource: uuid.UUID | None,
    start: str = "2030-01-01T00:00:00Z",
    end: str = "2030-01-05T00:00:00Z",
    token_type: str = "PinCode",
    **flags: bool,
) -> dict[str, Any]:
    made = token_parameters(
        value=value,
        token_type=token_type,
        start=start,
        end=end,
        Permissions={
            name: {"Value": flags.get(name.lower(), False)}
            for name in ("Bed", "Room", "Floor", "Building")
        },
    )
    if resource is not None:
        made["ResourceId"] = str(resource)
    return made


def test_same_code_on_the_same_door_is_refused(tenant: Tenant) -> None:
    tree = building(tenant)
    first = tenant.mews(
        "add", ResourceAccessTokenParameters=[params("1212#", tree["room"], room=True)]
    )
    assert first.status_code == 200
    first_id = first.json()["ResourceAccessTokens"][0]["Id"]
    second = tenant.mews(
        "add",
        ResourceAccessTokenParameters=[
            params(
                "1212#",
                tree["room"],
                room=True,
                start="2030-01-04T00:00:00Z",
                end="2030-01-09T00:00:00Z",
            )
        ],
    )
    assert_error(second, 403, f"Item 0: this PinCode value collides with token {first_id}")


def test_what_does_not_collide(tenant: Tenant) -> None:
    tree = building(tenant)
    items = [
        params("3434#", tree["room"], room=True),
        params(
            "3434#",
            tree["room"],
            room=True,
            start="2030-01-05T00:00:00Z",
            end="2030-01-06T00:00:00Z",
        ),
        params("3434#", tree["other_room"], room=True),  # another door
        params("3434#", tree["room"], token_type="RfidTag", room=True),  # another type
        params("3434#", tree["bed"], bed=True),  # the bed's flag only: the bed door
    ]
    response = tenant.mews("add", ResourceAccessTokenParameters=items)
    assert response.status_code == 200, response.text


def test_shared_ancestors_and_whole_property_tokens_collide(tenant: Tenant) -> None:
    tree = building(tenant)
    floor_one = params("5656#", tree["room"], floor=True)
    floor_two = params("5656#", tree["other_room"], floor=True)
    in_batch = tenant.mews("add", ResourceAccessTokenParameters=[floor_one, floor_two])
    assert_error(in_batch, 403, "Item 1: this PinCode value collides with item 0 of this request")
    assert (
        tenant.mews(
            "add", ResourceAccessTokenParameters=[params("7878#", tree["room"], room=True)]
        ).status_code
        == 200
    )
    anywhere = tenant.mews("add", ResourceAccessTokenParameters=[params("7878#", None, room=True)])
    assert_error(anywhere, 403, "Item 0: this PinCode value collides with token")


def test_update_into_a_collision_is_refused(tenant: Tenant) -> None:
    tree = building(tenant)
    made = tenant.mews(
        "add",
        ResourceAccessTokenParameters=[
            params("9090#", tree["room"], room=True),
            params("9191#", tree["room"], room=True),
        ],
    ).json()["ResourceAccessTokens"]
    change = [{"ResourceAccessTokenId": made[1]["Id"], "Value": {"Value": "9090#"}}]
    assert_error(
        tenant.mews("update", ResourceAccessTokenUpdates=change),
        403,
        f"Item 0: this PinCode value collides with token {made[0]['Id']}",
    )
    assert (
        tenant.mews("delete", Ids=[made[0]["Id"]]).status_code == 200
    )  # a deleted token counts no more
    assert tenant.mews("update", ResourceAccessTokenUpdates=change).status_code == 200


def test_the_rule_can_be_switched_off_per_property(
    shared_deployment: Deployment, tenant: Tenant
) -> None:
    tree = building(tenant)
    same = [params("2323#", tree["room"], room=True), params("2323#", tree["room"], room=True)]
    assert tenant.mews("add", ResourceAccessTokenParameters=same).status_code == 403
    set_collision_check(shared_deployment.store, enterprise_id=tenant.enterprise_id, enabled=False)
    assert tenant.mews("add", ResourceAccessTokenParameters=same).status_code == 200


def test_a_tree_change_that_would_make_a_collision_is_refused(tenant: Tenant) -> None:
    """Two tokens of one PIN with the Floor flag at rooms of two floors share no door; moving
    one room onto the other floor (or creating the room a token names, under that floor) would
    give them the floor's door: refused (409, the rule's message), the tree as it was."""
    tree = building(tenant)
    second_floor, third_floor, new_room = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for floor in (second_floor, third_floor):
        assert put(tenant, floor, "Floor", tree["building"]).status_code == 200
    assert put(tenant, new_room, "Room", second_floor).status_code == 200
    unplaced = uuid.uuid4()
    added = tenant.mews(
        "add",
        ResourceAccessTokenParameters=[
            params("4545#", tree["room"], floor=True),
            params("4545#", new_room, floor=True),
            params("4545#", unplaced, floor=True),  # a room the tree does not hold yet
        ],
    )
    assert added.status_code == 200, added.text
    moved = put(tenant, new_room, "Room", tree["floor"])
    assert moved.status_code == 409, moved.text
    assert "would let two active tokens with the same Type and Value" in moved.json()["Message"]
    assert v1(tenant, "GET", f"/resources/{new_room}").json()["ParentId"] == str(second_floor)
    created = put(tenant, unplaced, "Room", tree["floor"])
    assert created.status_code == 409, created.text
    assert v1(tenant, "GET", f"/resources/{unplaced}").status_code == 404
    # On a floor where no token of that value is, the same room may go.
    assert put(tenant, unplaced, "Room", third_floor).status_code == 200
